"""What an operator does to an execution: cancel it, or resume it from its failed step."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from workflows.engine.messages import Publish, run_message
from workflows.errors import ExecutionConflict, UnknownExecution
from workflows.model import ExecutionStatus, Project
from workflows.store import executions as store
from workflows.store.models import Execution


def cancel(session: Session, execution_id: str, *, now: datetime) -> Execution:
    """Cancel a pending or running execution and its steps that have not started.

    A step running now finishes but starts nothing. An execution accepted but
    not dispatched yet is created cancelled, so that dispatch (which only
    inserts what is absent) starts nothing. Raises :class:`UnknownExecution`,
    or :class:`ExecutionConflict` when it has already finished.
    """
    execution = store.lock_execution(session, execution_id)
    if execution is None:
        planned = store.planned_execution(session, execution_id)
        if planned is None:
            raise UnknownExecution(execution_id)
        store.create_execution(session, store.execution_values(planned))
        execution = store.lock_execution(session, execution_id)
        assert execution is not None
    if ExecutionStatus(execution.status).finished:
        raise ExecutionConflict(
            f"execution {execution_id!r} has already finished ({execution.status})",
            details={"status": execution.status},
        )
    store.cancel(session, execution, now=now)
    return execution


def resume(
    session: Session, project: Project, execution_id: str, *, now: datetime
) -> tuple[Execution, Publish]:
    """Resume a failed execution from its failed step: a new visit of that task.

    Returns the execution, reopened, and the new step's run message. Raises
    :class:`UnknownExecution`, or :class:`ExecutionConflict` unless it failed at
    a step whose task is still defined.
    """
    execution = store.lock_execution(session, execution_id)
    if execution is None:
        raise UnknownExecution(execution_id)
    if execution.status != ExecutionStatus.FAILED.value:
        raise ExecutionConflict(
            f"only a failed execution can be retried; {execution_id!r} is {execution.status}",
            details={"status": execution.status},
        )
    if execution.superseded_by is not None:
        raise ExecutionConflict(
            f"execution {execution_id!r} was replayed as {execution.superseded_by!r}; "
            "retry that one instead",
            details={"superseded_by": execution.superseded_by},
        )
    failed = store.last_failed_step(session, execution_id)
    if failed is None:
        raise ExecutionConflict(
            f"execution {execution_id!r} failed before any step ran; there is nothing to "
            "resume (send the event again)",
            details={"error": execution.error},
        )
    workflow = project.workflows.get(execution.workflow_id)
    task = workflow.find_task(failed.task_id) if workflow is not None else None
    if task is None:
        raise ExecutionConflict(
            f"task {failed.task_id!r} of workflow {execution.workflow_id!r} is no longer "
            "defined; the execution cannot resume",
            details={"workflow_id": execution.workflow_id, "task_id": failed.task_id},
        )
    step = store.resume(session, execution, failed, now=now)
    if step is None:
        raise ExecutionConflict(f"execution {execution_id!r} changed meanwhile; try again")
    return execution, run_message(step.id, task, workflow_id=execution.workflow_id)
