"""Portable conditional inserts: ``INSERT ... ON CONFLICT DO NOTHING`` on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from workflows.store.models import Base


def insert_ignore(session: Session, model: type[Base], values: Mapping[str, Any]) -> bool:
    """Insert one row unless it breaks a unique constraint; True when a row was inserted."""
    table = cast(Table, model.__table__)
    stmt = insert_or_nothing(session, table).values(**values)
    # RETURNING tells whether a row went in (rowcount is not reliable for inserts)
    key = next(iter(table.primary_key.columns))
    return session.connection().execute(stmt.returning(key)).first() is not None


def insert_or_nothing(session: Session, target: Any) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the session's dialect (PostgreSQL or SQLite)."""
    return insert_or_nothing_for(session.get_bind().dialect.name, target)


def insert_or_nothing_for(dialect: str, target: Any) -> Any:
    """:func:`insert_or_nothing` for a dialect named ``postgresql`` or ``sqlite``."""
    if dialect == "postgresql":
        return postgresql.insert(target).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(target).on_conflict_do_nothing()
    return insert(target)  # pragma: no cover - herald supports PostgreSQL and SQLite only
