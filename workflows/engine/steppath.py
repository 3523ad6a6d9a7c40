"""The common step in two statements (PostgreSQL): a claim that reads, a settle that advances.

A tool or agent step of the workflow's chain (not a parallel step's child, in
a workflow that does not fan out) is claimed with everything its run reads in
one statement, and its attempt is recorded with what follows (the next step,
or the execution's end, or a retry) in another: each on an autocommit
connection, so each is one round trip and its own transaction (the SQL is in
:mod:`workflows.store.steppath`). The decisions are those of the general path
(:func:`workflows.engine.progress.retrying`, :func:`~workflows.transitions.decide`,
:func:`~workflows.engine.progress.ending`); the statements fence on the state
they were decided on. Whenever a statement does not match (a duplicate
message, a step not due, a cancelled execution, a stale attempt), it changed
nothing and these functions return None: the caller takes the general path
(:func:`workflows.engine.claim.claim`, :func:`workflows.engine.progress.settle`),
which handles every case, in a transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Table

from workflows.engine.attempt import Attempt
from workflows.engine.claim import Claim
from workflows.engine.context import assemble_context
from workflows.engine.messages import MAX_COUNTDOWN, Message, due_message, lease_seconds
from workflows.engine.progress import Settled, ending, plain, retrying
from workflows.ids import new_id
from workflows.model import Project, StepStatus, Task, Workflow
from workflows.store import steppath as store
from workflows.store.models import Step
from workflows.transitions import decide


def available(engine: Engine) -> bool:
    """Whether the database runs these statements (PostgreSQL; not SQLite)."""
    return engine.dialect.name == "postgresql"


def simple(project: Project, workflow_id: str | None, task_id: str | None) -> Task | None:
    """The task, when a step of it may take this path: a tool or agent of a linear chain."""
    workflow = project.workflows.get(workflow_id) if workflow_id is not None else None
    task = workflow.find_task(task_id) if workflow is not None and task_id is not None else None
    if workflow is None or task is None or not _linear(workflow, task):
        return None
    return task


def _linear(workflow: Workflow, task: Task) -> bool:
    return not workflow.fans_out and not task.settles_alone and task.parent is None


def claim(
    connection: Connection,
    project: Project,
    step_id: str,
    *,
    workflow_id: str | None,
    task_id: str | None,
    worker: str,
    now: datetime,
    worker_id: str | None = None,
    message_id: str | None = None,
) -> Claim | None:
    """Claim step ``step_id``, a visit of ``task_id`` of ``workflow_id`` as its message says.

    The claim of :func:`workflows.engine.claim.claim` for a step that is simply
    claimable (queued or retrying and due, its execution pending or running
    that workflow), in one statement; None when the task is not
    :func:`simple` or the step is not such a step (nothing was changed).
    """
    task = simple(project, workflow_id, task_id)
    if task is None or workflow_id is None:
        return None
    workflow = project.workflows[workflow_id]
    params = {
        "p_step": step_id,
        "p_workflow": workflow_id,
        "p_task": task.id,
        "p_due": now + timedelta(seconds=1),
        "p_lease": now + timedelta(seconds=lease_seconds(task)),
        "p_worker": worker,
        "p_worker_id": worker_id,
        "p_message": message_id,
        "p_now": now,
    }
    row = store.claim(connection, params)
    if row is None:
        return None
    table: Table = Step.__table__  # type: ignore[assignment]
    step = Step(**{column.key: row[column.key] for column in table.columns})
    results = {
        done: {"output": output, "status": status, "error": error}
        for done, output, status, error in row["task_results"] or ()
    }
    event_id = row["execution_event_id"]
    received = row["event_received_at"]
    event = (
        {"id": event_id, "name": row["event_name"], "received_at": received.isoformat()}
        if row["event_name"] is not None
        else {}
    )
    context = assemble_context(
        step.execution_id, row["execution_input"], results, event, workflow, step
    )
    return Claim(
        step,
        step.attempts,
        workflow,
        task,
        context,
        event_id,
        row["execution_trace_id"],
        step_count=row["execution_step_count"],
    )


def settle(
    connection: Connection, claim: Claim, result: Attempt, *, now: datetime
) -> tuple[Settled, str | None] | None:
    """Record ``result`` and what follows in one statement; the settle and the status it ended.

    What :func:`workflows.engine.progress.settle` does for a step of a
    :func:`simple` task whose execution still runs with the steps it had when
    claimed; None otherwise (nothing was changed: the general path decides).
    The second value is the execution's status when this settle finished it.
    """
    workflow, task, step, attempt = claim.workflow, claim.task, claim.step, claim.attempt
    if claim.step_count is None or step.parent_id is not None or not _linear(workflow, task):
        return None
    output = result.output if result.ok else None
    params: dict[str, Any] = {
        "p_step": step.id,
        "p_execution": step.execution_id,
        "p_attempt": attempt,
        "p_count": claim.step_count,
        "p_now": now,
        "p_input": result.input,
        "p_output": output,
        "p_error": result.error,
        "p_usage": result.usage or None,
        "p_lease_until": None,
    }
    again = retrying(workflow, task, step, attempt, result, now=now)
    if again is not None:
        changes, retry = again
        params.update({f"p_{name}": value for name, value in changes.items()})
        _, recorded, _ = store.settle(connection, "retry", params)
        return (Settled(StepStatus.RETRYING, retry, error=result.error), None) if recorded else None

    status = StepStatus.SUCCEEDED if result.ok else result.failure_status
    params["p_status"] = status.value
    context = claim.context
    context["tasks"][task.id] = {"output": output, "status": status.value, "error": result.error}
    decision = decide(workflow, task, result.outcome, claim.step_count)
    if decision.next_task is None:
        finish, finish_output, finish_error = ending(workflow, decision, result, context)
        params.update(
            p_finish_status=finish.value, p_finish_output=finish_output, p_finish_error=finish_error
        )
        _, recorded, _ = store.settle(connection, "finish", params)
        return (Settled(status, [], error=result.error), finish.value) if recorded else None

    following = workflow.task(decision.next_task)
    not_before = now + timedelta(seconds=following.delay) if following.delay else None
    params.update(
        p_next_id=new_id("stp"),
        p_next_task=following.id,
        p_next_cause=plain(decision.cause),
        p_next_queued_at=now if not_before is None else not_before,
        p_next_not_before=not_before,
        p_next_publish_count=1 if following.delay <= MAX_COUNTDOWN else 0,
    )
    _, recorded, next_id = store.settle(connection, "next", params)
    if not recorded:
        return None
    publish: list[Message] = []
    if next_id is not None:
        publish.extend(
            due_message(next_id, following, not_before=not_before, now=now, workflow_id=workflow.id)
        )
    return Settled(status, publish, error=result.error), None
