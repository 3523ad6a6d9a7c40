"""Steps of the types that run no tool or agent, settled in the transaction that claimed them.

A ``router`` step evaluates its condition (compiled when the project loaded) on
the step's data and goes where the value routes it. A ``sleep`` step was queued
with ``not_before`` its duration away (as any task's ``delay``); once claimed,
it has slept and succeeds. A ``signal`` step emits its event
(:mod:`workflows.engine.signals`); a ``parallel`` step starts its children
(:mod:`workflows.engine.parallel`), a ``collection`` its items
(:mod:`workflows.engine.collection`), a ``wait`` awaits its event
(:mod:`workflows.engine.waits`). Such a step is still a row,
claimed and published like any other (so redelivery, the sweep and cancel treat
it the same way), but nothing runs outside the database: the claim, the result
and the next step are one transaction, and a redelivered message finds the step
finished.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy.orm import Session

from workflows.engine import collection, waits
from workflows.engine.attempt import Attempt
from workflows.engine.claim import Claim
from workflows.engine.messages import Message
from workflows.engine.parallel import start
from workflows.engine.progress import Settled, settle_claim
from workflows.engine.signals import emit
from workflows.expressions import ExpressionFailed, route_key
from workflows.model import Project, Task

#: ``type`` of the step error when a router's value has no route and no default
NO_ROUTE = "no_route"
#: ``type`` of the step error when an expression cannot be evaluated
EXPRESSION_ERROR = "expression_error"


def settle_alone(session: Session, project: Project, claim: Claim, *, now: datetime) -> Settled:
    """Run the claimed step of a task that uses nothing, in the caller's transaction."""
    extra: list[Message] = []
    if claim.task.parallel is not None:
        return start(session, claim, now=now)
    if claim.task.collection is not None:
        return collection.start(session, claim, now=now)
    if claim.task.wait is not None:
        return waits.start(claim, now=now)
    if claim.task.signal is not None:
        emitted = emit(session, project, claim, now=now)
        result, extra = emitted.attempt, list(emitted.publish)
    else:
        result = _attempt(claim)
    settled = settle_claim(session, claim, result, now=now)
    if settled.fenced or not extra:
        return settled
    return dataclasses.replace(settled, publish=[*extra, *settled.publish])


def _attempt(claim: Claim) -> Attempt:
    task = claim.task
    if task.router is not None:
        return route(task, claim.context)
    if task.type == "sleep":
        return Attempt(ok=True, output={"slept": task.delay}, input={"duration": task.delay})
    raise AssertionError(f"task {task.id!r} of type {task.type!r} runs a tool or an agent")


def route(task: Task, context: dict[str, object]) -> Attempt:
    """A router's choice: the route of its condition's value, else its default, else an error."""
    router = task.router
    assert router is not None
    shown = {"condition": router.condition.source}
    try:
        value = router.condition.evaluate(context)
    except ExpressionFailed as exc:
        error = {"type": EXPRESSION_ERROR, "message": f"router {task.id!r}: {exc.message}"}
        return Attempt(ok=False, error=error, input=shown)
    key = route_key(value)
    target = router.routes.get(key, router.default)
    if target is None:
        message = (
            f"router {task.id!r}: value {key!r} has no route and there is no default "
            f"(routes: {', '.join(router.routes)})"
        )
        return Attempt(ok=False, error={"type": NO_ROUTE, "message": message, "value": value})
    output = {"value": value, "route": target, "default": key not in router.routes}
    return Attempt(ok=True, output=output, input=shown, route=target)
