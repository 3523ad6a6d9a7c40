"""Waits resumed by an accepted event: stored with the event, published after the commit.

When some ``wait`` task of the loaded project awaits the event's name, the event
is inserted and the waiting steps it matches are resumed
(:func:`workflows.engine.waits.resume`) in one transaction, so a 202 means both
are durable; the resumed steps are recorded on the event (a replayed key answers
them again) and what follows them is published after the commit. Any other event
is one autocommitted INSERT, shared with the events of concurrent requests of the process
(:mod:`app.groupcommit`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from app.logs import log_event
from app.publish import Dispatching
from app.state import HeraldState
from workflows.engine import waits
from workflows.engine.messages import Publish
from workflows.metrics import executions_finished
from workflows.store import events as store
from workflows.store.executions import finished_in
from workflows.store.models import Event


def insert_and_resume(
    st: HeraldState, values: dict[str, Any], *, request_id: str, dispatch: bool
) -> tuple[bool, list[dict[str, str]]]:
    """Insert the event (``False`` if its key is taken) and resume the waits it matches;
    once committed, publish its dispatch if ``dispatch`` (and the event was inserted)."""
    dispatching = Dispatching.now(values["id"], request_id) if dispatch else None
    if not st.definitions.registry.awaited(values["name"]):
        return st.group_commit.insert(values, dispatching), []
    event = {"id": values["id"], "name": values["name"], "payload": values["payload"]}
    with st.sessions.begin() as session:
        if not store.insert_event(session, values):
            return False, []
        found = waits.resume(session, st.definitions.project, event, now=values["received_at"])
        if found.resumed:
            session.execute(
                update(Event).where(Event.id == event["id"]).values(resumed=found.resumed)
            )
        finished = finished_in(session)
    executions_finished(finished)
    for resumed in found.resumed:
        log_event(
            "wait.resumed",
            event_id=event["id"],
            request_id=request_id,
            execution_id=resumed["execution_id"],
            step_id=resumed["step_id"],
        )
    for message in found.publish:  # a step left unpublished is the sweep's to publish
        if isinstance(message, Publish):
            st.publisher.step(message, request_id=request_id)
    if dispatching is not None:
        st.publisher.dispatch_each([dispatching])
    return True, found.resumed
