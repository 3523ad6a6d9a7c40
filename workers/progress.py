"""Moving an execution on after a step: record the attempt, retry, next step or finish.

:func:`settle` runs inside the caller's transaction (the step's second one, or
the sweep's) and returns the run messages to publish once it has committed.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from workers.celery_app import MAX_COUNTDOWN
from workflows.errors import TemplateError
from workflows.model import ExecutionStatus, StepStatus, Task, Workflow
from workflows.store import executions as store
from workflows.store import steps as step_store
from workflows.store.models import Execution, Step
from workflows.templates import render
from workflows.transitions import Outcome, decide


@dataclass(frozen=True)
class Publish:
    """A step's run message, to send once the transaction that queued it has committed."""

    step_id: str
    #: ``tool`` or ``agent``: which task (and queue) runs it
    uses: str
    timeout: float
    countdown: float = 0.0


@dataclass(frozen=True)
class Settled:
    """What recording an attempt did: the step's new status and the messages to publish."""

    status: StepStatus
    publish: list[Publish]


@dataclass(frozen=True)
class Attempt:
    """What one attempt at a step produced."""

    ok: bool
    output: Any = None
    #: the error record (``{"type", "message", ...}``) when not ok
    error: dict[str, Any] | None = None
    #: whether another attempt may succeed
    retryable: bool = False
    #: StepStatus for a failure: ``failed`` or ``timed_out``
    failure_status: StepStatus = StepStatus.FAILED
    #: the rendered ``with`` (None when rendering failed)
    input: Any = None
    usage: dict[str, Any] = field(default_factory=dict)


def step_timeout(task: Task) -> float:
    """Seconds one attempt of ``task`` may run: the tool's own timeout, else the task's."""
    if task.tool is not None and task.tool.timeout is not None:
        return task.tool.timeout
    return task.timeout


def publish_for(step: Step, task: Task, countdown: float = 0.0) -> Publish:
    """The run message of ``step`` (a visit of ``task``)."""
    return Publish(step.id, task.uses, step_timeout(task), countdown)


def settle(
    session: Session,
    *,
    execution: Execution,
    step: Step,
    attempt: int,
    workflow: Workflow,
    task: Task,
    result: Attempt,
    context: dict[str, Any],
    now: datetime,
) -> Settled | None:
    """Record ``result`` for ``attempt`` of ``step`` and decide what comes next.

    Returns the step's new status and the messages to publish after commit, or
    None when the write was fenced off: the step is no longer running this
    attempt (a stale worker).
    """
    values: dict[str, Any] = {
        "input": result.input,
        "output": result.output if result.ok else None,
        "error": result.error,
        "usage": result.usage or None,
    }
    if not result.ok and result.retryable and attempt < task.retry.attempts:
        delay = task.retry.delay(attempt, random.random())
        not_before = now + timedelta(seconds=delay)
        short = delay <= MAX_COUNTDOWN
        values.update(
            status=StepStatus.RETRYING.value,
            not_before=not_before,
            lease_until=None,
            # a published retry is due at not_before; a long one waits for the sweep
            queued_at=not_before if short else now,
            publish_count=step.publish_count + (1 if short else 0),
        )
        if not step_store.record_attempt(session, step.id, attempt, values):
            return None
        return Settled(
            StepStatus.RETRYING, [publish_for(step, task, countdown=delay)] if short else []
        )

    status = StepStatus.SUCCEEDED if result.ok else result.failure_status
    values.update(status=status.value, finished_at=now, lease_until=None)
    if not step_store.record_attempt(session, step.id, attempt, values):
        return None
    if ExecutionStatus(execution.status).finished:
        return Settled(status, [])  # cancelled while the step ran: record it, start nothing
    context["tasks"][task.id] = {
        "output": values["output"],
        "status": status.value,
        "error": result.error,
    }
    publish = advance(
        session,
        execution=execution,
        workflow=workflow,
        task=task,
        result=result,
        context=context,
        now=now,
    )
    return Settled(status, publish)


def advance(
    session: Session,
    *,
    execution: Execution,
    workflow: Workflow,
    task: Task,
    result: Attempt,
    context: dict[str, Any],
    now: datetime,
) -> list[Publish]:
    """Apply the transition after ``task``'s step finished: queue the next step or finish."""
    outcome = Outcome(ok=result.ok, output=result.output if result.ok else None, error=result.error)
    decision = decide(workflow, task, outcome, execution.step_count)
    if decision.next_task is not None:
        next_task = workflow.task(decision.next_task)
        created = step_store.queue_step(
            session, execution, next_task.id, now=now, cause=_plain(decision.cause)
        )
        if created is None:
            return []
        return [Publish(created, next_task.uses, step_timeout(next_task))]
    status = ExecutionStatus(decision.status)
    output: Any = result.output if result.ok else None
    error = _plain(decision.error)
    if status is ExecutionStatus.SUCCEEDED and workflow.outputs is not None:
        try:
            output = render(dict(workflow.outputs), context)
        except TemplateError as exc:
            status, output = ExecutionStatus.FAILED, None
            error = {"type": "template_error", "message": f"workflow outputs: {exc.message}"}
    store.finish_execution(execution, status, now=now, output=output, error=error)
    return []


def fail_execution(execution: Execution, message: str, *, kind: str, now: datetime) -> None:
    """Finish ``execution`` as failed for a reason outside any step's tool or agent."""
    store.finish_execution(
        execution, ExecutionStatus.FAILED, now=now, error={"type": kind, "message": message}
    )


def _plain(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A JSON-column-ready copy of an error record."""
    return dict(record) if record is not None else None
