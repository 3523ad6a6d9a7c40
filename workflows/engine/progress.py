"""Moving an execution on after a step: record the attempt, retry, next step, finish, give up.

Every function runs inside the caller's transaction, with the execution locked
(lock order: execution before step), and returns the messages to publish once
it has committed.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from workflows.engine.attempt import Attempt
from workflows.engine.context import build_context
from workflows.engine.messages import MAX_COUNTDOWN, Message, Publish, due_message, run_message
from workflows.errors import TemplateError
from workflows.model import ExecutionStatus, Project, StepStatus, Task, Workflow
from workflows.store import executions as store
from workflows.store import steps as step_store
from workflows.store.models import Execution, Step
from workflows.templates import render
from workflows.transitions import Decision, decide

if TYPE_CHECKING:
    from workflows.engine.claim import Claim


@dataclass(frozen=True)
class Settled:
    """What recording an attempt did: the step's status now and the messages to publish."""

    status: StepStatus
    publish: Sequence[Message]
    #: the write was fenced off: the step no longer ran this attempt (a stale worker)
    fenced: bool = False
    #: the attempt's error record, when it failed
    error: dict[str, Any] | None = None


def settle(
    session: Session,
    *,
    step: Step,
    attempt: int,
    workflow: Workflow,
    task: Task,
    result: Attempt,
    context: dict[str, Any],
    now: datetime,
) -> Settled:
    """Record ``result`` for ``attempt`` of ``step`` and decide what comes next.

    Locks the execution first. A write fenced off (the step is no longer
    running this attempt) changes nothing and says what the step is now.
    """
    execution = store.lock_execution(session, step.execution_id)
    assert execution is not None  # executions are never deleted
    values: dict[str, Any] = {
        "input": result.input,
        "output": result.output if result.ok else None,
        "error": result.error,
        "usage": result.usage or None,
    }
    again = retrying(workflow, task, step, attempt, result, now=now)
    if again is not None:
        changes, retry = again
        if not step_store.record_attempt(session, step.id, attempt, {**values, **changes}):
            return _fenced(session, step)
        return Settled(StepStatus.RETRYING, retry, error=result.error)

    status = StepStatus.SUCCEEDED if result.ok else result.failure_status
    values.update(status=status.value, finished_at=now, lease_until=None)
    if not step_store.record_attempt(session, step.id, attempt, values):
        return _fenced(session, step)
    if ExecutionStatus(execution.status).finished:
        # cancelled while the step ran: record it, start nothing
        return Settled(status, [], error=result.error)
    context["tasks"][task.id] = {
        "output": values["output"],
        "status": status.value,
        "error": result.error,
    }
    publish = advance(
        session, execution, workflow, task, result, context, now=now, parent_id=step.parent_id
    )
    return Settled(status, publish, error=result.error)


def retrying(
    workflow: Workflow, task: Task, step: Step, attempt: int, result: Attempt, *, now: datetime
) -> tuple[dict[str, Any], list[Message]] | None:
    """The step's new values and its run message when ``result`` earns another attempt.

    None when it does not (a success, a final failure, attempts used up).
    """
    if result.ok or not result.retryable or attempt >= task.retry.attempts:
        return None
    delay = task.retry.delay(attempt, random.random())
    not_before = now + timedelta(seconds=delay)
    short = delay <= MAX_COUNTDOWN
    values = {
        "status": StepStatus.RETRYING.value,
        "not_before": not_before,
        "lease_until": None,
        # a published retry is due at not_before; a long one waits for the sweep
        "queued_at": not_before if short else now,
        "publish_count": step.publish_count + (1 if short else 0),
    }
    retry: list[Message] = (
        [run_message(step.id, task, countdown=delay, workflow_id=workflow.id)] if short else []
    )
    return values, retry


def settle_claim(session: Session, claim: Claim, result: Attempt, *, now: datetime) -> Settled:
    """:func:`settle` the attempt ``claim`` took, with ``result``."""
    return settle(
        session,
        step=claim.step,
        attempt=claim.attempt,
        workflow=claim.workflow,
        task=claim.task,
        result=result,
        context=claim.context,
        now=now,
    )


def advance(
    session: Session,
    execution: Execution,
    workflow: Workflow,
    task: Task,
    result: Attempt,
    context: dict[str, Any],
    *,
    now: datetime,
    parent_id: str | None = None,
) -> list[Message]:
    """Apply the transition after ``task``'s step finished: queue the next step or finish.

    A parallel step's child (``parent_id``) goes to its parent's join instead.
    """
    if parent_id is not None:
        from workflows.engine.parallel import join

        return join(session, execution, workflow, parent_id, now=now)
    taken = execution.step_count
    if workflow.fans_out:  # children are bounded by their definition: max_steps bounds the rest
        taken = step_store.top_level_count(session, execution.id)
    decision = decide(workflow, task, result.outcome, taken)
    if decision.next_task is not None:
        next_task = workflow.task(decision.next_task)
        queued: list[Message] = [
            *queue_visit(session, execution, next_task, now=now, cause=plain(decision.cause))
        ]
        return queued
    status, output, error = ending(workflow, decision, result, context)
    store.finish_execution(execution, status, now=now, output=output, error=error)
    return []


def ending(
    workflow: Workflow, decision: Decision, result: Attempt, context: dict[str, Any]
) -> tuple[ExecutionStatus, Any, dict[str, Any] | None]:
    """How an execution that ``decision`` ends finishes: its status, output and error.

    A success renders the workflow's ``outputs`` on ``context`` (a template that
    does not render fails the execution instead).
    """
    status = ExecutionStatus(decision.status)
    output: Any = result.output if result.ok else None
    error = plain(decision.error)
    if status is ExecutionStatus.SUCCEEDED and workflow.outputs is not None:
        try:
            output = render(dict(workflow.outputs), context)
        except TemplateError as exc:
            status, output = ExecutionStatus.FAILED, None
            error = {"type": "template_error", "message": f"workflow outputs: {exc.message}"}
    return status, output, error


def queue_visit(
    session: Session,
    execution: Execution,
    task: Task,
    *,
    now: datetime,
    cause: dict[str, Any] | None = None,
    parent_id: str | None = None,
) -> list[Publish]:
    """Queue the next visit of ``task`` (waiting its ``delay``, if any); its run message.

    A delay up to :data:`MAX_COUNTDOWN` is a countdown on the message; a longer
    one publishes nothing: the step waits in the database for the sweep.
    """
    not_before = now + timedelta(seconds=task.delay) if task.delay else None
    created = step_store.queue_step(
        session,
        execution,
        task.id,
        now=now,
        cause=cause,
        not_before=not_before,
        published=task.delay <= MAX_COUNTDOWN,
        parent_id=parent_id,
    )
    if created is None:
        return []
    return due_message(
        created, task, not_before=not_before, now=now, workflow_id=execution.workflow_id
    )


def give_up(
    session: Session,
    project: Project,
    execution: Execution,
    step: Step,
    message: str,
    *,
    now: datetime,
) -> list[Message]:
    """Fail a step whose workers keep dying, following its task's on_error.

    The caller holds the execution's lock.
    """
    result = Attempt.lost(message, lost=step.lost)
    step.status, step.error, step.finished_at, step.lease_until = (
        StepStatus.FAILED.value,
        result.error,
        now,
        None,
    )
    if ExecutionStatus(execution.status).finished:
        return []
    workflow = project.workflows.get(execution.workflow_id)
    task = workflow.find_task(step.task_id) if workflow is not None else None
    if workflow is None or task is None:
        fail_execution(execution, message, kind="worker_lost", now=now)
        return []
    context = build_context(session, execution, workflow, step)
    context["tasks"][task.id] = {
        "output": None,
        "status": StepStatus.FAILED.value,
        "error": result.error,
    }
    return advance(
        session, execution, workflow, task, result, context, now=now, parent_id=step.parent_id
    )


def lost_too_often(step: Step, cap: int) -> str:
    """Why a step that lost its worker more than ``cap`` times is given up."""
    return f"step lost its worker {step.lost} times (cap {cap}); giving up"


def fail_execution(execution: Execution, message: str, *, kind: str, now: datetime) -> None:
    """Finish ``execution`` as failed for a reason outside any step's tool or agent."""
    store.finish_execution(
        execution, ExecutionStatus.FAILED, now=now, error={"type": kind, "message": message}
    )


def _fenced(session: Session, step: Step) -> Settled:
    current = step_store.get_step(session, step.id)
    status = StepStatus(current.status) if current is not None else StepStatus.CANCELLED
    return Settled(status, [], fenced=True)


def plain(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A JSON-column-ready copy of an error record."""
    return dict(record) if record is not None else None
