"""Group commit: the events that concurrent requests of one process accept share one commit.

A new event is one autocommitted ``INSERT``: a round trip and a WAL flush each.
Under load, the request threads of a process spend most of their time waiting
for those, one after the other. Here a request hands its row to
:meth:`GroupCommit.insert` and waits: when no commit is in flight, it leads one
itself, taking every row queued meanwhile (its own included), inserts them in
one statement (:func:`~workflows.store.events.insert_events`) committed on its
own, and wakes the others. Rows that arrive during a commit queue up for the
next one, so a request alone never waits for anyone (its group is itself: the
single ``INSERT`` it always was), and under load one commit serves as many
requests as arrived during the previous one.

Durability is unchanged: :meth:`insert` returns only once its row is committed,
and a request answers ``202`` only after that. A commit that fails answers every
request of its group with the error (a 503 for a database outage); a statement
the database refuses for another reason is tried again row by row, so that a
row only fails its own request, as it would alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from app.publish import Dispatching
from workflows.store import events as store
from workflows.store.db import autocommit


@dataclass
class _Ticket:
    """One request's row and, once its group is committed, what became of it."""

    values: dict[str, Any]
    #: its dispatch, published after the commit if the row was inserted
    dispatch: Dispatching | None = None
    #: its group's commit has ended (the waiters' signal)
    done: bool = False
    #: the commit told what became of the row (``inserted`` or ``error``)
    settled: bool = False
    inserted: bool = False
    error: BaseException | None = None

    def outcome(self) -> bool:
        if self.error is not None:
            raise self.error
        return self.inserted


class GroupCommit:
    """Inserts event rows for the request threads of one process, a group per commit."""

    def __init__(
        self, engine: Engine, publish: Callable[[Sequence[Dispatching]], object] | None = None
    ) -> None:
        self.engine = engine
        #: publishes the dispatches of a group's inserted rows at once (one broker round trip)
        self.publish = publish
        self._changed = threading.Condition()
        self._queue: list[_Ticket] = []
        self._leading = False

    def insert(self, values: dict[str, Any], dispatch: Dispatching | None = None) -> bool:
        """Insert an event row and commit it; ``False`` if its idempotency key is taken.

        Then, if the row was inserted, ``dispatch`` is published with the others of its
        group (a failed publish is :class:`~app.publish.Publisher`'s to log and uncount).
        Raises what the commit raised. Every row has the keys of every other (one
        statement inserts them all).
        """
        ticket = _Ticket(values, dispatch)
        with self._changed:
            self._queue.append(ticket)
            while self._leading and not ticket.done:
                self._changed.wait()
            if ticket.done:
                return ticket.outcome()
            # no commit in flight: this request leads the next, for every row queued
            self._leading = True
            group, self._queue = self._queue, []
        try:
            self._commit(group)
            self._publish(group)
        finally:
            with self._changed:
                for member in group:
                    if not member.settled:
                        # the leader was interrupted (BaseException): nobody may wait forever
                        member.error = RuntimeError("the group commit was interrupted")
                    member.done = True
                self._leading = False
                self._changed.notify_all()
        return ticket.outcome()

    def _publish(self, group: list[_Ticket]) -> None:
        """After the commit: the dispatches of the rows it inserted, in one go."""
        dispatches = [m.dispatch for m in group if m.inserted and m.dispatch is not None]
        if dispatches and self.publish is not None:
            self.publish(dispatches)

    def _commit(self, group: list[_Ticket]) -> None:
        """Insert the group's rows in one autocommitted statement; record each outcome."""
        try:
            with autocommit(self.engine) as connection:
                if len(group) == 1:  # the prepared single-row INSERT
                    values = group[0].values
                    inserted = {values["id"]} if store.insert_event(connection, values) else set()
                else:
                    inserted = store.insert_events(connection, [m.values for m in group])
        except (OperationalError, InterfaceError) as exc:
            for member in group:  # the database is out of reach: nobody's row is stored
                member.error, member.settled = exc, True
            return
        except Exception as exc:
            if len(group) == 1:
                group[0].error, group[0].settled = exc, True
                return
            for member in group:  # a refused statement: each row on its own, as if alone
                self._commit([member])
            return
        for member in group:
            member.inserted, member.settled = member.values["id"] in inserted, True
