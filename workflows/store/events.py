"""Events and rejections in the state store: insert, find by idempotency key, list, audit.

Functions take a :class:`Session`; the caller owns the transaction. Inserting an
event is race-safe: two requests with the same ``(token_name, idempotency_key)``
make one row, because the insert does nothing on conflict with the unique constraint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Connection, Insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from workflows.store.models import Event, Execution, Rejection


@cache
def _insert_ignoring_conflicts(dialect: str) -> Insert:
    """``INSERT ... ON CONFLICT (token_name, idempotency_key) DO NOTHING RETURNING id``.

    A Core statement on the table, built once per dialect and executed with the
    row's values as parameters: SQLAlchemy caches its compiled form, and no ORM
    unit of work runs for a row that is never loaded back.
    """
    table = Event.metadata.tables[Event.__tablename__]
    conflict = [table.c.token_name, table.c.idempotency_key]
    if dialect == "postgresql":
        statement: Insert = postgresql.insert(table).on_conflict_do_nothing(index_elements=conflict)
    elif dialect == "sqlite":
        statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict)
    else:
        raise NotImplementedError(f"herald stores events in PostgreSQL or SQLite, not {dialect}")
    # RETURNING, not rowcount: the driver's rowcount is not reliable for DO NOTHING
    return statement.returning(table.c.id)


def insert_event(db: Session | Connection, values: Mapping[str, Any]) -> bool:
    """Insert an event row; ``False`` if its idempotency key is already taken (nothing written).

    ``db`` is a session (the insert joins its transaction) or a connection, such as
    :func:`~workflows.store.db.autocommit`'s, where the insert is a transaction of its own.
    """
    connection = db.connection() if isinstance(db, Session) else db
    statement = _insert_ignoring_conflicts(connection.dialect.name)
    return connection.execute(statement, dict(values)).scalar_one_or_none() is not None


def find_by_idempotency_key(session: Session, token_name: str, key: str) -> Event | None:
    """The event this token sent with this idempotency key, if any."""
    return session.scalars(
        select(Event).where(Event.token_name == token_name, Event.idempotency_key == key)
    ).one_or_none()


def release_idempotency_key(session: Session, event_id: str, key: str) -> bool:
    """Free an expired key so that a new event may use it; ``False`` if someone already did."""
    result = session.execute(
        update(Event)
        .where(Event.id == event_id, Event.idempotency_key == key)
        .values(idempotency_key=None)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_rejection(
    session: Session,
    *,
    status_code: int,
    code: str,
    message: str,
    details: Any = None,
    event_name: str | None = None,
    token_name: str | None = None,
    client_addr: str | None = None,
    request_id: str | None = None,
) -> Rejection:
    """Keep an audit record of a refused event: who sent it, from where, and why."""
    rejection = Rejection(
        status_code=status_code,
        code=code,
        message=message,
        details=details,
        event_name=event_name[:255] if event_name else None,
        token_name=token_name,
        client_addr=client_addr[:64] if client_addr else None,
        request_id=request_id,
    )
    session.add(rejection)
    session.flush()
    return rejection


def get_event(session: Session, event_id: str) -> Event | None:
    """The event with this id, if any."""
    return session.get(Event, event_id)


@dataclass(frozen=True)
class EventFilter:
    """What ``GET /api/v1/events`` may filter on; ``before_id`` is the page cursor."""

    name: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: str | None = None


def list_events(
    session: Session, where: EventFilter, limit: int, *, visible: ColumnElement[bool] | None = None
) -> list[Event]:
    """Events matching ``where``, newest first (ids sort by arrival), at most ``limit``.

    ``visible`` keeps only what the reader may see (:mod:`workflows.store.visibility`).
    """
    query = select(Event).order_by(Event.id.desc()).limit(limit)
    if visible is not None:
        query = query.where(visible)
    if where.name is not None:
        query = query.where(Event.name == where.name)
    if where.status is not None:
        query = query.where(Event.status == where.status)
    if where.since is not None:
        query = query.where(Event.received_at >= where.since)
    if where.until is not None:
        query = query.where(Event.received_at < where.until)
    if where.before_id is not None:
        query = query.where(Event.id < where.before_id)
    return list(session.scalars(query))


def execution_statuses(session: Session, execution_ids: Iterable[str]) -> dict[str, str]:
    """The current status of each execution that exists, by id (planned ones may not yet)."""
    ids = list(execution_ids)
    if not ids:
        return {}
    rows = session.execute(select(Execution.id, Execution.status).where(Execution.id.in_(ids)))
    return {row.id: row.status for row in rows}


def as_utc(moment: datetime) -> datetime:
    """A stored time as timezone-aware UTC (SQLite gives naive times back)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
