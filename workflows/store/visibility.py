"""Which events, and which executions, a reader may see: the same rule in SQL and in Python.

A reader is an API token: it sees the events it sent (``events.token_name``) and
the executions they started, or every token's with ``every_token``; in both cases
only events whose name one of its patterns matches (``order.*``: ``*`` is any
run of characters, ``?`` one character, as for sending). Listing filters in the
query (:meth:`Visibility.events_clause`, :meth:`Visibility.executions_clause`);
one row already loaded is checked with :meth:`Visibility.allows`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from sqlalchemy import ColumnElement, and_, or_, select, true
from sqlalchemy.orm import Session

from workflows.store.models import Event, Execution


@dataclass(frozen=True)
class Visibility:
    """What one reader may see: its own events or every token's, and which names."""

    #: the reader's token name (the ``token_name`` its events were stored with)
    token_name: str
    #: sees the events of every token (``events:read:all`` / ``executions:read:all``, ``*``)
    every_token: bool
    #: the event-name patterns of the token
    names: tuple[str, ...]

    @property
    def everything(self) -> bool:
        """Nothing is hidden from this reader (every token, every name)."""
        return self.every_token and "*" in self.names

    def allows(self, event: Event | None) -> bool:
        """Whether the reader may see ``event``; ``None`` (no event): only with ``everything``."""
        if event is None:
            return self.everything
        return self.allows_sent(event.token_name, event.name)

    def allows_sent(self, token_name: str, name: str) -> bool:
        """Whether the reader may see an event named ``name`` that ``token_name`` sent."""
        if not self.every_token and token_name != self.token_name:
            return False
        return any(_compiled(pattern).match(name) for pattern in self.names)

    def allows_execution(self, session: Session, execution: Execution) -> bool:
        """Whether the reader may see ``execution``: the event that started it decides.

        Reads the event's sender and name only, never its payload.
        """
        if self.everything:
            return True
        if execution.event_id is None:
            return False
        sent = session.execute(
            select(Event.token_name, Event.name).where(Event.id == execution.event_id)
        ).first()
        return sent is not None and self.allows_sent(sent.token_name, sent.name)

    def events_clause(self) -> ColumnElement[bool]:
        """A WHERE clause on ``events`` keeping the rows the reader may see."""
        clauses: list[ColumnElement[bool]] = []
        if not self.every_token:
            clauses.append(Event.token_name == self.token_name)
        if "*" not in self.names:
            clauses.append(or_(*(Event.name.regexp_match(name_regex(p)) for p in self.names)))
        return and_(true(), *clauses)

    def executions_clause(self) -> ColumnElement[bool]:
        """A WHERE clause on ``executions`` keeping those started by events the reader may see."""
        if self.everything:
            return true()
        return Execution.event_id.in_(select(Event.id).where(self.events_clause()))


def name_regex(pattern: str) -> str:
    """An anchored regular expression, the same in PostgreSQL and Python, for a name pattern.

    ``*`` is any run of characters and ``?`` one character; every other character
    stands for itself (the tokens file allows only those of a name).
    """
    body = "".join(
        ".*" if c == "*" else "." if c == "?" else c if c.isalnum() or c in "_-" else "\\" + c
        for c in pattern
    )
    return f"^{body}$"


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(name_regex(pattern))
