"""Events and rejections in the state store: insert, find by idempotency key, list, audit.

Functions take a :class:`Session`; the caller owns the transaction. Inserting an
event is race-safe: two requests with the same ``(token_name, idempotency_key)``
make one row, because the insert does nothing on conflict with the unique constraint.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Insert,
    TextualSelect,
    and_,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from workflows.model import EventStatus, ExecutionStatus
from workflows.store.models import Event, Execution, Rejection, Replay


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


def insert_events(db: Session | Connection, rows: list[dict[str, Any]]) -> set[str]:
    """Insert event rows in one statement; the ids inserted (a row whose key is taken: not).

    Every row has the same keys. On PostgreSQL the rows travel as one JSON parameter:
    ``INSERT INTO events (...) SELECT ... FROM jsonb_populate_recordset(NULL::events, :rows)
    ON CONFLICT DO NOTHING RETURNING id`` (a short statement, prepared once, whatever
    the batch's size; a ``VALUES`` list of 500 rows costs more to build and parse than
    to run). On SQLite, one multi-row ``INSERT ... VALUES``.
    """
    if not rows:
        return set()
    connection = db.connection() if isinstance(db, Session) else db
    if connection.dialect.name == "postgresql":
        statement = _insert_json_rows(tuple(rows[0]))
        parameter = json.dumps(rows, default=_json_default, separators=(",", ":"))
        return set(connection.execute(statement, {"rows": parameter}).scalars())
    return set(
        connection.execute(_insert_ignoring_conflicts(connection.dialect.name), rows).scalars()
    )


@cache
def _insert_json_rows(columns: tuple[str, ...]) -> TextualSelect:
    table = Event.metadata.tables[Event.__tablename__]
    unknown = set(columns) - set(table.c.keys())
    assert not unknown, f"not columns of events: {unknown}"
    names = ", ".join(columns)
    return text(
        f"INSERT INTO events ({names}) SELECT {names} "
        "FROM jsonb_populate_recordset(NULL::events, CAST(:rows AS jsonb)) "
        "ON CONFLICT (token_name, idempotency_key) DO NOTHING RETURNING id"
    ).columns(id=table.c.id.type)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in an event row")


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
    #: events with a delivery in this state (:data:`DELIVERY_STATES`) ...
    delivery: str | None = None
    #: ... that got there at or after this time
    delivery_since: datetime | None = None


#: a delivery's state -> the statuses of its current execution in that state
DELIVERY_STATES: dict[str, tuple[str, ...]] = {
    "planned": (),  # routed, no execution yet (the event is not dispatched)
    "started": (ExecutionStatus.PENDING.value, ExecutionStatus.RUNNING.value),
    "succeeded": (ExecutionStatus.SUCCEEDED.value,),
    "failed": (ExecutionStatus.FAILED.value,),
    "filtered": (),  # a trigger filter turned the event away (events.filtered)
    "cancelled": (ExecutionStatus.CANCELLED.value,),
}


def delivery_state(execution_status: str | None) -> str:
    """The state of a delivery whose current execution has ``execution_status`` (None: none)."""
    if execution_status is None:
        return "planned"
    for state, statuses in DELIVERY_STATES.items():
        if execution_status in statuses:
            return state
    return "started"


def delivery_clause(state: str, since: datetime | None) -> ColumnElement[bool]:
    """Events with a delivery in ``state`` (reached at or after ``since``): an EXISTS on the
    current executions, by ``executions.event_id`` (indexed)."""
    if state == "planned":
        clause: ColumnElement[bool] = Event.status == EventStatus.ACCEPTED.value
        return clause if since is None else and_(clause, Event.received_at >= since)
    if state == "filtered":
        clause = Event.filtered.is_not(None)
        return clause if since is None else and_(clause, Event.received_at >= since)
    when = func.coalesce(Execution.finished_at, Execution.started_at, Execution.created_at)
    current = select(Execution.id).where(
        Execution.event_id == Event.id,
        Execution.superseded_by.is_(None),
        Execution.status.in_(DELIVERY_STATES[state]),
    )
    if since is not None:
        current = current.where(when >= since)
    return current.exists()


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
    if where.delivery is not None:
        query = query.where(delivery_clause(where.delivery, where.delivery_since))
    return list(session.scalars(query))


def deliveries(session: Session, event: Event) -> list[dict[str, Any]]:
    """One record per (event, workflow): its state, current execution, and every execution.

    Built from ``events.routes`` and the event's executions (one indexed read), not
    kept in a table: no step or execution change has anything more to write.
    """
    rows = session.execute(
        select(
            Execution.id,
            Execution.workflow_id,
            Execution.status,
            Execution.superseded_by,
            Execution.replay_id,
            Execution.finished_at,
        )
        .where(Execution.event_id == event.id)
        .order_by(Execution.id)
    ).all()
    by_workflow: dict[str, list[Any]] = {}
    for route in event.routes:
        by_workflow.setdefault(route["workflow_id"], [])
    for row in rows:
        by_workflow.setdefault(row.workflow_id, []).append(row)
    out = []
    for workflow_id, executions in by_workflow.items():
        current = next((e for e in executions if e.superseded_by is None), None)
        out.append(
            {
                "workflow_id": workflow_id,
                "state": delivery_state(current.status if current else None),
                "execution_id": current.id if current else _planned_id(event, workflow_id),
                "executions": len(executions),
                "replays": sum(1 for e in executions if e.replay_id is not None),
            }
        )
    for turned_away in event.filtered or []:
        if turned_away["workflow_id"] not in by_workflow:
            out.append(
                {
                    "workflow_id": turned_away["workflow_id"],
                    "state": "filtered",
                    "execution_id": None,
                    "executions": 0,
                    "replays": 0,
                    "reason": turned_away["reason"],
                }
            )
    return out


def replays_of(session: Session, event_id: str) -> list[Replay]:
    """The replays of an event, oldest first."""
    return list(
        session.scalars(select(Replay).where(Replay.event_id == event_id).order_by(Replay.id))
    )


def _planned_id(event: Event, workflow_id: str) -> str | None:
    return next((r["execution_id"] for r in event.routes if r["workflow_id"] == workflow_id), None)


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
