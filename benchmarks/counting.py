"""Load-independent figures of a code path: SQL statements and database round trips.

Wall-clock time on a shared machine is noise; the statements a step or a POST
sends are not. :func:`count_sql` listens on an engine while a block runs and
counts what reached the server: each statement, each ``BEGIN`` (psycopg sends it
on its own before a transaction's first statement) and each ``COMMIT`` or
``ROLLBACK`` is one round trip, except on a connection in autocommit mode (see
:func:`workflows.store.db.autocommit`), where the driver sends none of them: a
statement there is its own transaction, one round trip. Tests assert upper
bounds with it, so a change that adds a statement to the step path fails; the benchmark reports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event


@dataclass
class SqlCount:
    """What reached the database while :func:`count_sql` listened."""

    statements: list[str] = field(default_factory=list)
    begins: int = 0
    commits: int = 0
    rollbacks: int = 0
    #: statements sent on an autocommit connection: each its own transaction
    autocommitted: int = 0

    @property
    def transactions(self) -> int:
        """Transactions committed: explicit commits, and statements in autocommit mode."""
        return self.commits + self.autocommitted

    @property
    def round_trips(self) -> int:
        """Statements plus transaction control: each one waits for the server once."""
        return len(self.statements) + self.begins + self.commits + self.rollbacks

    def summary(self) -> str:
        """One line: statements, round trips and what they were (begin, commit, autocommit...).

        ``A`` counts the statements sent in autocommit mode (each its own transaction).
        """
        return (
            f"{len(self.statements)} statements, {self.round_trips} round trips "
            f"({self.begins} begin, {self.commits} commit, {self.rollbacks} rollback, "
            f"{self.autocommitted} autocommit)"
        )


@contextmanager
def count_sql(engine: Engine) -> Iterator[SqlCount]:
    """Count the statements and round trips ``engine``'s connections send inside the block."""
    counted = SqlCount()

    def statement(conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        counted.statements.append(sql)
        counted.autocommitted += 1 - _sent(conn)

    def begin(conn: Any) -> None:
        counted.begins += _sent(conn)

    def commit(conn: Any) -> None:
        counted.commits += _sent(conn)

    def rollback(conn: Any) -> None:
        counted.rollbacks += _sent(conn)

    listeners = (
        ("before_cursor_execute", statement),
        ("begin", begin),
        ("commit", commit),
        ("rollback", rollback),
    )
    for name, listener in listeners:
        event.listen(engine, name, listener)
    try:
        yield counted
    finally:
        for name, listener in listeners:
            event.remove(engine, name, listener)


def _sent(conn: Any) -> int:
    """1 when transaction control on ``conn`` reaches the server; 0 in autocommit mode.

    SQLAlchemy still fires ``begin``, ``commit`` and ``rollback`` on an autocommit
    connection, but the driver (psycopg, sqlite3) sends nothing for them.
    """
    dbapi = getattr(conn.connection, "dbapi_connection", None)
    return 0 if getattr(dbapi, "autocommit", False) is True else 1
