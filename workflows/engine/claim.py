"""Claiming a step for one attempt: the exclusive conditional UPDATE and what its run needs.

A claim locks the execution, then takes the step (lock order: execution before
step). Whatever a claim finds instead of a runnable step, it settles here: the
execution is over (the step is cancelled), the definitions lost the task (the
execution fails), the step keeps losing its worker (it is given up), or a
redelivered message finds its step finished (what followed is published again).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from workflows.engine.context import build_context
from workflows.engine.messages import Message, Publish, due_message, lease_seconds
from workflows.engine.progress import fail_execution, give_up, lost_too_often
from workflows.model import ExecutionStatus, Project, StepStatus, Task, Workflow
from workflows.store import steps as step_store
from workflows.store.models import Step

#: the lease of a step whose task is no longer defined (the claim fails it at once)
_UNKNOWN_TASK_LEASE = 60.0


class ClaimOutcome(StrEnum):
    """How a claim ended."""

    #: the step is this worker's to run
    CLAIMED = "claimed"
    #: nothing to do: unknown step, finished execution, or a step someone else has
    DROPPED = "dropped"
    #: the step had finished; what followed it is published again
    REPUBLISHED = "republished"
    #: the step failed without running (definitions gone, or lost too often)
    FAILED = "failed"


@dataclass(frozen=True)
class Claim:
    """A step claimed for one attempt, with everything its run needs."""

    step: Step
    attempt: int
    workflow: Workflow
    task: Task
    context: dict[str, Any]
    event_id: str | None
    #: the W3C trace of the execution (None for one started before traces)
    trace_id: str | None = None
    #: the execution's ``step_count`` when the step was claimed (what its settle decides on)
    step_count: int | None = None


@dataclass(frozen=True)
class Claimed:
    """What :func:`claim` did: the claim (when ``CLAIMED``), messages, the step found."""

    outcome: ClaimOutcome
    claim: Claim | None = None
    publish: list[Message] = field(default_factory=list)
    #: the step as found, when there was one (for the caller's log line)
    step: Step | None = None
    #: why the step was dropped or failed
    reason: str = ""


def claim(
    session: Session,
    project: Project,
    step_id: str,
    *,
    worker: str,
    redelivered: bool,
    redelivery_cap: int,
    now: datetime,
    worker_id: str | None = None,
    message_id: str | None = None,
) -> Claimed:
    """Claim step ``step_id`` for one attempt by ``worker`` (its row: ``worker_id``).

    ``redelivered`` is the broker's flag: the message was handed back after
    its worker died, so a step still ``running`` is reclaimed (``lost`` + 1),
    provided ``message_id`` is the message that claimed it. Another message
    redelivered late (its worker died and the sweep requeued the step since,
    under a new message) finds the step running for someone else and is dropped.
    """
    row = step_store.step_with_execution(session, step_id)
    if row is None:
        return Claimed(ClaimOutcome.DROPPED, reason="unknown step")
    found, execution, event = row
    if ExecutionStatus(execution.status).finished:
        # the step was read as the query found it, before it waited for the execution's
        # lock: the commit that finished the execution may have finished the step too
        found = step_store.get_step(session, step_id) or found
        if not StepStatus(found.status).finished:
            found.status, found.finished_at = StepStatus.CANCELLED.value, now
        return Claimed(ClaimOutcome.DROPPED, step=found, reason=f"execution is {execution.status}")
    workflow = project.workflows.get(execution.workflow_id)
    task = workflow.find_task(found.task_id) if workflow is not None else None
    lost = (
        redelivered
        and found.status == StepStatus.RUNNING.value
        and (message_id is None or found.message_id in (None, message_id))
    )
    lease = lease_seconds(task) if task is not None else _UNKNOWN_TASK_LEASE
    if not step_store.claim_step(
        session,
        found,
        worker=worker,
        now=now,
        lease_seconds=lease,
        lost=lost,
        worker_id=worker_id,
        message_id=message_id,
    ):
        reason = f"step is {found.status}"
        if redelivered and workflow is not None and found.status == StepStatus.WAITING.value:
            # a parallel step whose worker died after commit: its children, again
            from workflows.engine.parallel import republish_children

            again: list[Message] = [*republish_children(session, workflow, found)]
            return Claimed(ClaimOutcome.REPUBLISHED, publish=again, step=found, reason=reason)
        if redelivered and workflow is not None and StepStatus(found.status).finished:
            # its worker may have died between commit and publish: publish what followed
            successor: list[Message] = [*_queued_successor(session, workflow, found, now)]
            return Claimed(ClaimOutcome.REPUBLISHED, publish=successor, step=found, reason=reason)
        return Claimed(ClaimOutcome.DROPPED, step=found, reason=reason)
    step = found  # now holding the claimed row
    if execution.started_at is None:
        execution.started_at = now
    execution.status = ExecutionStatus.RUNNING.value
    if workflow is None or task is None:
        what = (
            f"workflow {execution.workflow_id!r}"
            if workflow is None
            else f"task {step.task_id!r} of workflow {execution.workflow_id!r}"
        )
        message = f"{what} is no longer defined; the step cannot run"
        step.status, step.finished_at, step.lease_until = StepStatus.FAILED.value, now, None
        step.error = {"type": "definition_missing", "message": message}
        fail_execution(execution, message, kind="definition_missing", now=now)
        return Claimed(ClaimOutcome.FAILED, step=step, reason=message)
    if lost and step.lost > redelivery_cap:
        message = lost_too_often(step, redelivery_cap)
        publish = give_up(session, project, execution, step, message, now=now)
        return Claimed(ClaimOutcome.FAILED, publish=publish, step=step, reason=message)
    context = build_context(session, execution, workflow, step, event=event)
    return Claimed(
        ClaimOutcome.CLAIMED,
        claim=Claim(
            step,
            step.attempts,
            workflow,
            task,
            context,
            execution.event_id,
            execution.trace_id,
            execution.step_count,
        ),
        step=step,
    )


def _queued_successor(
    session: Session, workflow: Workflow, step: Step, now: datetime
) -> list[Publish]:
    """The step that followed ``step``, if it is still queued, to publish again."""
    after = step_store.step_at(session, step.execution_id, step.seq + 1)
    if after is None or after.status != StepStatus.QUEUED.value:
        return []
    task = workflow.find_task(after.task_id)
    if task is None:
        return []
    message = due_message(
        after.id, task, not_before=after.not_before, now=now, workflow_id=workflow.id
    )
    after.publish_count += len(message)
    return message
