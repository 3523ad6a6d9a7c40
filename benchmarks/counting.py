"""Load-independent figures of a code path: SQL statements and database round trips.

Wall-clock time on a shared machine is noise; the statements a step or a POST
sends are not. :func:`count_sql` listens on an engine while a block runs and
counts what reached the server: each statement, each ``BEGIN`` (psycopg sends it
on its own before a transaction's first statement) and each ``COMMIT`` or
``ROLLBACK`` is one round trip. Tests assert upper bounds with it, so a change
that adds a statement to the step path fails; the benchmark reports it.
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

    @property
    def round_trips(self) -> int:
        """Statements plus transaction control: each one waits for the server once."""
        return len(self.statements) + self.begins + self.commits + self.rollbacks

    def summary(self) -> str:
        """One line: ``N statements, M round trips (B begin, C commit, R rollback)``."""
        return (
            f"{len(self.statements)} statements, {self.round_trips} round trips "
            f"({self.begins} begin, {self.commits} commit, {self.rollbacks} rollback)"
        )


@contextmanager
def count_sql(engine: Engine) -> Iterator[SqlCount]:
    """Count the statements and round trips ``engine``'s connections send inside the block."""
    counted = SqlCount()

    def statement(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        counted.statements.append(sql)

    def begin(_conn: Any) -> None:
        counted.begins += 1

    def commit(_conn: Any) -> None:
        counted.commits += 1

    def rollback(_conn: Any) -> None:
        counted.rollbacks += 1

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
