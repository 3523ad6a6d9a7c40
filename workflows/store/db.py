"""Engines, sessions and the schema: connect, check the schema is migrated, migrate.

``herald serve`` and ``herald worker`` call :func:`check_schema` before they
start, so that a database that was never migrated is a clear message, not a
stack trace on the first request.
"""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool, StaticPool

from workflows.errors import DatabaseUnavailable, SchemaNotMigrated

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 (not psycopg2)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout so threads can share it."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        parsed = make_url(url)
        if parsed.database in (None, "", ":memory:"):
            engine = create_engine(
                url, connect_args={"check_same_thread": False}, poolclass=StaticPool
            )
        else:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"connect_timeout": 5},
    )
    # instead of pool_pre_ping (a round trip per checkout): see _drop_if_closed_by_server
    event.listen(engine, "checkout", _drop_if_closed_by_server)
    return engine


def make_unpooled_engine(url: str) -> Engine:
    """An engine that keeps no idle connection: for a thread that runs now and then.

    Pool processes may be forked while such a thread lives; with no pooled
    connection there is none for a child to inherit. (SQLite keeps its usual engine.)
    """
    url = normalize_url(url)
    if url.startswith("sqlite"):
        return make_engine(url)
    return create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})


def _drop_if_closed_by_server(dbapi_connection: Any, _record: object, _proxy: object) -> None:
    """Refuse a pooled connection that the server closed while it sat idle, without a round trip.

    An idle PostgreSQL connection has nothing to read unless the server ended it
    (a restart, ``pg_terminate_backend``, an idle timeout: an error message, then
    end of file). Raising :class:`DisconnectionError` makes the pool discard it and
    check out another, so the first request after a database restart still succeeds.
    """
    if dbapi_connection.closed:
        raise DisconnectionError("the connection was closed")
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    if poller.poll(0):
        raise DisconnectionError("the database closed the connection while it was idle")


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (we read results after committing)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def autocommit(engine: Engine) -> Iterator[Connection]:
    """A connection on which every statement is its own transaction, committed when it returns.

    For a write that is one statement: it costs one round trip, where an explicit
    transaction costs three (``BEGIN``, the statement, ``COMMIT``).
    """
    with engine.connect() as connection:
        yield connection.execution_options(isolation_level="AUTOCOMMIT")


def alembic_config(url: str) -> object:
    """The Alembic configuration for ``url``, pointing at the project's migrations."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision`` (``herald db upgrade``)."""
    from alembic import command

    try:
        command.upgrade(alembic_config(url), revision)  # type: ignore[arg-type]
    except OperationalError as exc:
        raise DatabaseUnavailable(f"cannot reach the database: {_reason(exc)}") from None


#: the newest migration this code knows; every process checks the database against it at
#: start, without importing Alembic (~10 MB a process), so a new migration updates it
#: (tests/workflows/test_migrations.py compares it with Alembic's own head)
HEAD_REVISION = "0009"


def head_revision() -> str:
    """The newest migration this code knows."""
    return HEAD_REVISION


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or ``None`` when it was never migrated."""
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            found = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except OperationalError as exc:
        raise DatabaseUnavailable(f"cannot reach the database: {_reason(exc)}") from None
    return ",".join(sorted(found)) or None  # two rows: branched heads, never equal to ours


def check_schema(engine: Engine) -> None:
    """Raise :class:`SchemaNotMigrated` unless the database is at the newest migration."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        state = "has no herald schema" if current is None else f"is at revision {current}"
        raise SchemaNotMigrated(
            f"the database {state}; this herald needs revision {head}. "
            "Run `herald db upgrade` (with the same HERALD_DATABASE_URL) first."
        )


def _reason(exc: OperationalError) -> str:
    """The driver's first line, without the SQL or parameters."""
    return str(exc.orig).strip().splitlines()[0] if exc.orig else "connection failed"
