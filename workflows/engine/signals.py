"""A ``signal`` step emits an event the way the Events API accepts one, once.

Its payload is rendered from the step's data, validated against the schema of
every workflow subscribed to the name, and stored as an accepted event (or an
unrouted one, when nothing subscribes) with one planned execution per
subscriber; ``herald.dispatch_event`` runs it after commit, as for an event
from the API. The insert happens in the transaction that claims and settles
the step, so a step emits its event exactly once: a redelivered message finds
the step finished, and a worker that dies before the commit leaves nothing.
The event's idempotency key is the step's (``<execution>:<task>:<visit>``),
under the token name ``signal:<workflow id>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from workflows import tracing
from workflows.engine.attempt import Attempt, idempotency_key
from workflows.engine.claim import Claim
from workflows.engine.messages import Dispatch
from workflows.errors import TemplateError
from workflows.ids import new_id
from workflows.model import EventStatus, Project
from workflows.registry import TriggerRegistry
from workflows.store import events as event_store
from workflows.templates import render

#: ``type`` of the step error when subscribers' schemas refuse the payload
SIGNAL_REJECTED = "signal_rejected"

_registry: tuple[Project, TriggerRegistry] | None = None


@dataclass(frozen=True)
class Emitted:
    """What emitting did: the step's attempt, and the dispatch to publish after commit."""

    attempt: Attempt
    publish: list[Dispatch] = field(default_factory=list)


def registry_of(project: Project) -> TriggerRegistry:
    """The trigger registry of ``project``, built once per loaded project in this process."""
    global _registry
    if _registry is None or _registry[0] is not project:
        _registry = (project, TriggerRegistry.build(project))
    return _registry[1]


def emit(session: Session, project: Project, claim: Claim, *, now: datetime) -> Emitted:
    """Render, validate and store the signal task's event in the caller's transaction."""
    task, step = claim.task, claim.step
    signal = task.signal
    assert signal is not None
    try:
        payload = render(dict(signal.payload), claim.context)
    except TemplateError as exc:
        return Emitted(Attempt.bad_input(task, exc))
    shown = {"name": signal.name, "payload": payload}
    registry = registry_of(project)
    errors = registry.validate(signal.name, payload)
    if errors:
        failing = sorted({e.workflow_id for e in errors})
        error: dict[str, Any] = {
            "type": SIGNAL_REJECTED,
            "message": f"signal {signal.name!r}: the payload does not satisfy the schema of "
            f"workflow(s) {', '.join(failing)}; nothing was started",
            "errors": [
                {"workflow_id": e.workflow_id, "path": e.path, "message": e.message} for e in errors
            ],
        }
        return Emitted(Attempt(ok=False, error=error, input=shown))
    token, key = f"signal:{claim.workflow.id}"[:100], idempotency_key(step)
    routes = _plan(registry, signal.name, payload)
    values = {
        "id": new_id("evt"),
        "name": signal.name,
        "payload": payload,
        "status": (EventStatus.ACCEPTED if routes else EventStatus.UNROUTED).value,
        "routes": routes,
        "token_name": token,
        "client_addr": None,
        "request_id": step.execution_id,
        "idempotency_key": key,
        "request_hash": None,
        "received_at": now,
        "publish_count": 1 if routes else 0,
        # the emitting step's trace: the child workflows continue it
        "trace_id": claim.trace_id or tracing.current_trace_id(),
    }
    duplicate = not event_store.insert_event(session, values)
    if duplicate:  # a former visit's transaction committed it: that event is the one
        existing = event_store.find_by_idempotency_key(session, token, key)
        assert existing is not None, "the event holding this key vanished"
        values.update(id=existing.id, routes=existing.routes, status=existing.status)
    output = {
        "event_id": values["id"],
        "name": signal.name,
        "workflows": [
            {"workflow_id": r["workflow_id"], "execution_id": r["execution_id"]}
            for r in values["routes"]
        ],
        "duplicate": duplicate,
    }
    dispatch = [Dispatch(values["id"])] if values["status"] == EventStatus.ACCEPTED.value else []
    return Emitted(Attempt(ok=True, output=output, input=shown), dispatch)


def _plan(registry: TriggerRegistry, name: str, payload: object) -> list[dict[str, str]]:
    """One planned execution per subscribed workflow its filter lets through, as the API plans."""
    routes: list[dict[str, str]] = []
    for subscription in registry.subscribers(name, payload):
        workflow = subscription.workflow
        if all(r["workflow_id"] != workflow.id for r in routes):
            routes.append(
                {
                    "workflow_id": workflow.id,
                    "version": workflow.version,
                    "execution_id": new_id("exe"),
                }
            )
    return routes
