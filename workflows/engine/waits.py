"""Wait steps: await an event, resumed once by the first one that matches, or timed out.

A ``wait`` step, once claimed, becomes ``waiting`` with the awaited event name in
``wait_event`` (a partial index of waiting steps by that name) and its timeout in
``not_before``; nothing is on the broker and nothing runs while it waits, so it
survives restarts of every process. Then one of two things happens, each in
one transaction, with the execution locked before the step:

- an event of that name is accepted (:func:`resume`, in the transaction that
  stores the event): every step waiting for the name whose condition holds on
  the event succeeds with the event (``{id, name, payload}``) as its output and
  the execution advances; what follows is published after commit;
- its timeout passes (:func:`time_out`, from the recovery sweep): the step times
  out and the execution goes to ``on_timeout`` (else ``on_error``, else it fails).

Both re-check the step under its lock: two events racing for one wait, or an
event and the timeout, are serialised on the execution's row and the second
finds the step finished, so a wait is resumed once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from sqlalchemy.orm import Session

from workflows.engine.attempt import Attempt
from workflows.engine.claim import Claim
from workflows.engine.context import build_context
from workflows.engine.messages import Message
from workflows.engine.progress import Settled, advance, fail_execution
from workflows.expressions import ExpressionFailed
from workflows.model import ExecutionStatus, Project, StepStatus, Task, Workflow
from workflows.store import executions as store
from workflows.store import steps as step_store
from workflows.store.models import Execution, Step

#: ``type`` of the step error when a wait times out
WAIT_TIMEOUT = "wait_timeout"


@dataclass(frozen=True)
class Resumed:
    """What an arriving event did to the waits: those it resumed, and what to publish."""

    #: ``[{"execution_id", "step_id", "task_id"}]``
    resumed: list[dict[str, str]] = field(default_factory=list)
    publish: list[Message] = field(default_factory=list)


def start(claim: Claim, *, now: datetime) -> Settled:
    """The claimed wait step starts waiting: its event name indexed, its timeout set."""
    step, wait = claim.step, claim.task.wait
    assert wait is not None
    step.status, step.lease_until = StepStatus.WAITING.value, None
    step.wait_event = wait.event
    step.not_before = now + timedelta(seconds=wait.timeout) if wait.timeout else None
    step.input = {
        "wait_for": wait.event,
        "condition": wait.condition.source if wait.condition is not None else None,
        "timeout": wait.timeout,
    }
    return Settled(StepStatus.WAITING, [])


def resume(session: Session, project: Project, event: dict[str, Any], *, now: datetime) -> Resumed:
    """Resume every step waiting for ``event`` (``{id, name, payload}``) whose condition holds.

    In the caller's transaction (the one that stores the event). Executions are
    locked one at a time in id order, each before its steps.
    """
    found = Resumed()
    candidates = step_store.waiting_for(session, event["name"])
    for execution_id, group in groupby(candidates, key=lambda row: row[0]):
        execution = store.lock_execution(session, execution_id)
        if execution is None or ExecutionStatus(execution.status).finished:
            continue
        workflow = project.workflows.get(execution.workflow_id)
        if workflow is None:
            continue
        for _, step_id in group:
            step = step_store.lock_step(session, step_id)
            if step is None or step.status != StepStatus.WAITING.value:
                continue  # resumed or timed out meanwhile
            task = workflow.find_task(step.task_id)
            if task is None or task.wait is None or task.wait.event != event["name"]:
                continue
            if not _matches(session, execution, workflow, task, step, event):
                continue
            found.publish.extend(_succeed(session, execution, workflow, task, step, event, now))
            found.resumed.append(
                {"execution_id": execution.id, "step_id": step.id, "task_id": step.task_id}
            )
            if ExecutionStatus(execution.status).finished:
                break
    return found


def time_out(
    session: Session, project: Project, execution: Execution, step: Step, *, now: datetime
) -> list[Message]:
    """The wait's timeout has passed: the step times out, down ``on_timeout`` or ``on_error``.

    The caller holds the execution's lock, then the step's.
    """
    workflow = project.workflows.get(execution.workflow_id)
    task = workflow.find_task(step.task_id) if workflow is not None else None
    seconds = task.wait.timeout if task is not None and task.wait is not None else None
    message = f"wait {step.task_id!r}: no matching {step.wait_event!r} event"
    if seconds:
        message += f" within {seconds:g} s"
    error = {"type": WAIT_TIMEOUT, "message": message, "event": step.wait_event}
    step.status, step.error, step.finished_at = StepStatus.TIMED_OUT.value, error, now
    step.not_before, step.lease_until = None, None
    if ExecutionStatus(execution.status).finished:
        return []
    if workflow is None or task is None or task.wait is None:
        fail_execution(execution, message, kind=WAIT_TIMEOUT, now=now)
        return []
    context = build_context(session, execution, workflow, step)
    context["tasks"][task.id] = {"output": None, "status": step.status, "error": error}
    routed = dataclasses.replace(task, on_error=task.wait.on_timeout or task.on_error)
    result = Attempt(ok=False, error=error, failure_status=StepStatus.TIMED_OUT)
    return advance(
        session, execution, workflow, routed, result, context, now=now, parent_id=step.parent_id
    )


def _matches(
    session: Session,
    execution: Execution,
    workflow: Workflow,
    task: Task,
    step: Step,
    event: dict[str, Any],
) -> bool:
    """Whether the wait's condition holds on ``event`` (one that cannot be evaluated does not)."""
    assert task.wait is not None
    condition = task.wait.condition
    if condition is None:
        return True
    context: dict[str, Any] = {"input": execution.input}
    if step.cause is not None:
        context["error"] = step.cause
    if "tasks" in condition.variables:
        context = build_context(session, execution, workflow, step)
    context["event"] = event
    try:
        return condition.evaluate(context) is True
    except ExpressionFailed:
        return False


def _succeed(
    session: Session,
    execution: Execution,
    workflow: Workflow,
    task: Task,
    step: Step,
    event: dict[str, Any],
    now: datetime,
) -> list[Message]:
    output = {"id": event["id"], "name": event["name"], "payload": event["payload"]}
    step.status, step.output, step.finished_at = StepStatus.SUCCEEDED.value, output, now
    step.not_before, step.lease_until = None, None
    context = build_context(session, execution, workflow, step)
    context["tasks"][task.id] = {"output": output, "status": step.status, "error": None}
    result = Attempt(ok=True, output=output)
    return advance(
        session, execution, workflow, task, result, context, now=now, parent_id=step.parent_id
    )
