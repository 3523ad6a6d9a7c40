"""Running one step: claim it, run one attempt (:mod:`workers.attempts`), record, move on.

Two transactions at most: the first claims the step (an exclusive conditional
UPDATE) and reads what rendering needs; the second records the attempt, fenced
on the attempt it claimed, and applies the transition. Messages are published
only after the commit that made their step durable.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kombu.exceptions import KombuError
from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from workers.attempts import Claim, execute
from workers.celery_app import HARD_LIMIT_GRACE, publish_step
from workers.logs import log_event
from workers.progress import (
    Attempt,
    Publish,
    advance,
    fail_execution,
    publish_for,
    settle,
    step_timeout,
)
from workers.runtime import Runtime
from workflows.model import ExecutionStatus, StepStatus, Task, Workflow
from workflows.store import executions as store
from workflows.store import steps as step_store
from workflows.store.models import Event, Execution, Step, utcnow

#: seconds added to a step's lease beyond its hard time limit
LEASE_MARGIN = 10.0


def run_step(rt: Runtime, step_id: str, *, worker: str, redelivered: bool = False) -> str:
    """Run one attempt of a step; returns what happened (for logs and tests).

    ``redelivered`` is the broker's flag: the message was handed back after
    its worker died, so a step still ``running`` is reclaimed (``lost`` + 1).
    """
    started = time.monotonic()
    claim, publish, outcome = _claim(rt, step_id, worker=worker, redelivered=redelivered)
    if claim is None:
        _publish(rt, publish)
        return outcome
    result = execute(claim)
    now = utcnow()
    with rt.sessions.begin() as session:
        execution = store.lock_execution(session, claim.step.execution_id)
        assert execution is not None  # executions are never deleted
        settled = settle(
            session,
            execution=execution,
            step=claim.step,
            attempt=claim.attempt,
            workflow=claim.workflow,
            task=claim.task,
            result=result,
            context=claim.context,
            now=now,
        )
        if settled is not None:
            final_status = settled.status.value
        else:  # fenced off: say what the step is now (rare, one more read)
            current = step_store.get_step(session, claim.step.id)
            final_status = current.status if current is not None else "unknown"
    _publish(rt, settled.publish if settled is not None else [])
    log_event(
        "step.finished",
        level=logging.INFO if result.ok else logging.WARNING,
        event_id=claim.event_id,
        execution_id=claim.step.execution_id,
        step_id=claim.step.id,
        task_id=claim.task.id,
        visit=claim.step.visit,
        attempt=claim.attempt,
        status=final_status,
        duration_ms=round((time.monotonic() - started) * 1000),
        error=(result.error or {}).get("message"),
        fenced=settled is None,
    )
    return final_status


def _claim(
    rt: Runtime, step_id: str, *, worker: str, redelivered: bool
) -> tuple[Claim | None, list[Publish], str]:
    """Transaction 1: claim the step and read what rendering needs."""
    now = utcnow()
    with rt.sessions.begin() as session:
        row = step_store.step_with_execution(session, step_id)
        if row is None:
            log_event("step.dropped", level=logging.WARNING, step_id=step_id, reason="unknown step")
            return None, [], "dropped"
        found, execution, event = row
        if ExecutionStatus(execution.status).finished:
            if not StepStatus(found.status).finished:
                found.status, found.finished_at = StepStatus.CANCELLED.value, now
            _dropped(found, f"execution is {execution.status}")
            return None, [], "dropped"
        workflow = rt.project.workflows.get(execution.workflow_id)
        task = _task(workflow, found.task_id)
        timeout = step_timeout(task) if task is not None else 60.0
        lost = redelivered and found.status == StepStatus.RUNNING.value
        claimed = step_store.claim_step(
            session,
            found,
            worker=worker,
            now=now,
            lease_seconds=timeout + HARD_LIMIT_GRACE + LEASE_MARGIN,
            lost=lost,
        )
        if not claimed:
            _dropped(found, f"step is {found.status}")
            if redelivered and workflow is not None and StepStatus(found.status).finished:
                # its worker may have died between commit and publish: publish what followed
                return None, _queued_successor(session, workflow, found), "republished"
            return None, [], "dropped"
        step = found  # now holding the claimed row
        if execution.started_at is None:
            execution.started_at = now
        execution.status = ExecutionStatus.RUNNING.value
        if workflow is None or task is None:
            what = (
                f"workflow {execution.workflow_id!r}"
                if workflow is None
                else (f"task {found.task_id!r} of workflow {execution.workflow_id!r}")
            )
            message = f"{what} is no longer defined; the step cannot run"
            step.status, step.finished_at, step.lease_until = StepStatus.FAILED.value, now, None
            step.error = {"type": "definition_missing", "message": message}
            fail_execution(execution, message, kind="definition_missing", now=now)
            return None, [], StepStatus.FAILED.value
        if lost and step.lost > rt.settings.redelivery_cap:
            message = (
                f"step lost its worker {step.lost} times (cap {rt.settings.redelivery_cap}); "
                "giving up"
            )
            return None, _give_up(session, execution, step, workflow, task, message, now), "failed"
        context = build_context(session, execution, workflow, step, event=event)
        return (
            Claim(step, step.attempts, workflow, task, context, execution.event_id),
            [],
            "claimed",
        )


def _give_up(
    session: Session,
    execution: Execution,
    step: Step,
    workflow: Workflow,
    task: Task,
    message: str,
    now: Any,
) -> list[Publish]:
    """Fail a step whose workers keep dying, following on_error."""
    error = {"type": "worker_lost", "message": message, "lost": step.lost}
    step.status, step.error, step.finished_at, step.lease_until = (
        StepStatus.FAILED.value,
        error,
        now,
        None,
    )
    context = build_context(session, execution, workflow, step)
    context["tasks"][task.id] = {"output": None, "status": StepStatus.FAILED.value, "error": error}
    result = Attempt(ok=False, error=error)
    return advance(
        session,
        execution=execution,
        workflow=workflow,
        task=task,
        result=result,
        context=context,
        now=now,
    )


def _queued_successor(session: Session, workflow: Workflow, step: Step) -> list[Publish]:
    """The step that followed ``step``, if it is still queued, to publish again."""
    after = step_store.step_at(session, step.execution_id, step.seq + 1)
    if after is None or after.status != StepStatus.QUEUED.value:
        return []
    task = _task(workflow, after.task_id)
    if task is None:
        return []
    after.publish_count += 1
    return [publish_for(after, task)]


def build_context(
    session: Session,
    execution: Execution,
    workflow: Workflow,
    step: Step,
    *,
    event: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What templates see: input, finished tasks, the cause, event, workflow, execution.

    ``event`` is the event's metadata when the caller has read it already.
    """
    if event is None:
        event = _event_metadata(session, execution.event_id)
    context: dict[str, Any] = {
        "input": execution.input,
        "tasks": step_store.task_results(session, execution.id),
        "event": event,
        "workflow": {"id": workflow.id, "version": workflow.version},
        "execution": {"id": execution.id, "step": step.seq},
    }
    if step.cause is not None:
        context["error"] = step.cause
    return context


def _event_metadata(session: Session, event_id: str | None) -> dict[str, Any]:
    """``{"id", "name", "received_at"}`` of an event, ``{}`` without one."""
    found = session.get(Event, event_id) if event_id else None
    if found is None:
        return {}
    return {"id": found.id, "name": found.name, "received_at": found.received_at.isoformat()}


def _task(workflow: Workflow | None, task_id: str) -> Task | None:
    if workflow is None:
        return None
    try:
        return workflow.task(task_id)
    except KeyError:
        return None


def _dropped(step: Step, reason: str) -> None:
    log_event(
        "step.dropped",
        execution_id=step.execution_id,
        step_id=step.id,
        task_id=step.task_id,
        reason=reason,
    )


def _publish(rt: Runtime, messages: list[Publish]) -> None:
    publish_messages(rt, messages)


def publish_messages(rt: Runtime, messages: list[Publish]) -> None:
    """Publish step run messages; one that fails is logged and left to the recovery sweep."""
    for message in messages:
        try:
            publish_step(
                rt.celery,
                message.step_id,
                uses=message.uses,
                timeout=message.timeout,
                countdown=message.countdown,
            )
        except (KombuError, RedisError, OSError) as exc:
            log_event(
                "step.publish_failed",
                level=logging.WARNING,
                step_id=message.step_id,
                reason=f"{type(exc).__name__}: {exc}",
            )
