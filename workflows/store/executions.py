"""Data functions for executions: locks, creation, finishing, listing, cancel and resume.

Every function takes the caller's session and leaves the transaction to it.
The step functions live in :mod:`workflows.store.steps` and the sweep's queries
in :mod:`workflows.store.recovery`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, object_session

from workflows.model import EventStatus, ExecutionStatus, StepStatus
from workflows.store.inserts import insert_ignore
from workflows.store.models import Event, Execution, Step
from workflows.store.steps import add_step, cancel_unfinished_steps

#: the key of ``Session.info`` under which a transaction lists the executions it finished
FINISHED = "herald.finished"
#: steps that have not finished and may be cancelled with their execution
UNFINISHED = (StepStatus.QUEUED.value, StepStatus.RETRYING.value, StepStatus.RUNNING.value)


def lock_event(session: Session, event_id: str) -> Event | None:
    """The event, re-read and locked until the transaction ends (PostgreSQL), or None."""
    return session.scalars(_locked(Event), {"p_id": event_id}).first()


def lock_execution(session: Session, execution_id: str) -> Execution | None:
    """The execution, re-read and locked until the transaction ends (PostgreSQL), or None."""
    return session.scalars(_locked(Execution), {"p_id": execution_id}).first()


@cache
def _locked(model: type[Event] | type[Execution]) -> Select[Any]:
    """``SELECT ... FOR UPDATE`` of one row by id, refreshing a loaded object; built once."""
    return (
        select(model)
        .where(model.id == bindparam("p_id"))
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def create_execution(session: Session, values: Mapping[str, Any]) -> bool:
    """Insert an execution under its planned id unless it exists; True when created now."""
    return insert_ignore(session, Execution, values)


def finish_execution(
    execution: Execution,
    status: ExecutionStatus,
    *,
    now: datetime,
    output: Any = None,
    error: Any = None,
) -> None:
    """Mark the execution finished with its status, output and error."""
    execution.status = status.value
    execution.output = output
    execution.error = error
    execution.finished_at = now
    _note_finished(execution)


def list_executions(
    session: Session,
    *,
    workflow: str | None = None,
    status: str | None = None,
    event: str | None = None,
    after: str | None = None,
    limit: int = 50,
    visible: ColumnElement[bool] | None = None,
) -> list[Execution]:
    """Executions newest first, filtered; ``after`` is the last id of the previous page.

    ``visible`` keeps only what the reader may see (:mod:`workflows.store.visibility`).
    """
    query = select(Execution).order_by(Execution.id.desc()).limit(limit)
    if visible is not None:
        query = query.where(visible)
    if workflow:
        query = query.where(Execution.workflow_id == workflow)
    if status:
        query = query.where(Execution.status == status)
    if event:
        query = query.where(Execution.event_id == event)
    if after:
        query = query.where(Execution.id < after)
    return list(session.scalars(query))


def cancel(session: Session, execution: Execution, *, now: datetime) -> None:
    """Cancel a pending or running execution and its steps that have not started."""
    execution.status = ExecutionStatus.CANCELLED.value
    execution.finished_at = now
    _note_finished(execution)
    cancel_unfinished_steps(session, execution.id, now=now)


def finished_in(session: Session) -> list[tuple[str, str]]:
    """(workflow, status) of every execution this session's transaction has finished."""
    return list(session.info.get(FINISHED, ()))


def _note_finished(execution: Execution) -> None:
    """List ``execution`` in its session's ``info``, for counting once the commit is done."""
    session = object_session(execution)
    if session is not None:
        session.info.setdefault(FINISHED, []).append((execution.workflow_id, execution.status))


def last_failed_step(session: Session, execution_id: str) -> Step | None:
    """The execution's latest step that failed or timed out (where a retry resumes).

    A parallel step's child is not one: its parent resumes, with all its children.
    """
    return session.scalars(
        select(Step)
        .where(
            Step.execution_id == execution_id,
            Step.parent_id.is_(None),
            Step.status.in_([StepStatus.FAILED.value, StepStatus.TIMED_OUT.value]),
        )
        .order_by(Step.seq.desc())
        .limit(1)
    ).first()


def resume(session: Session, execution: Execution, failed: Step, *, now: datetime) -> Step | None:
    """Queue a new visit of ``failed``'s task and reopen the execution; the new step or None."""
    step = add_step(session, execution, failed.task_id, now=now, cause=failed.cause)
    if step is not None:
        execution.status = ExecutionStatus.RUNNING.value
        execution.output = None
        execution.error = None
        execution.finished_at = None
    return step


def planned_execution(session: Session, execution_id: str, *, scan: int = 1000) -> Execution | None:
    """An execution planned by an accepted event but not created yet, as an unsaved row.

    The API answers 202 with execution ids before dispatch creates them; reading
    one in between shows it ``pending`` instead of "not found". Only events
    still ``accepted`` are looked at (the newest ``scan`` of them), by their
    routes alone: the payload of the one event that planned it is read, no other.
    """
    wanted = [{"execution_id": execution_id}]
    accepted = Event.status == EventStatus.ACCEPTED.value
    if session.get_bind().dialect.name == "postgresql":
        query = select(Event.id, Event.routes).where(
            accepted, type_coerce(Event.routes, JSONB).contains(wanted)
        )
    else:
        query = select(Event.id, Event.routes).where(accepted)
    rows = session.execute(query.order_by(Event.received_at.desc()).limit(scan))
    for event_id, routes in rows:
        for route in routes:
            if route.get("execution_id") == execution_id:
                event = session.get(Event, event_id)
                if event is None:
                    return None
                return Execution(
                    id=execution_id,
                    event_id=event.id,
                    workflow_id=route["workflow_id"],
                    workflow_version=route.get("version", ""),
                    status=ExecutionStatus.PENDING.value,
                    input=event.payload,
                    step_count=0,
                    created_at=event.received_at,
                )
    return None


def execution_values(execution: Execution) -> dict[str, Any]:
    """The column values of an unsaved execution, for :func:`create_execution`."""
    return {
        "id": execution.id,
        "event_id": execution.event_id,
        "workflow_id": execution.workflow_id,
        "workflow_version": execution.workflow_version,
        "status": execution.status,
        "input": execution.input,
        "step_count": execution.step_count,
        "created_at": execution.created_at,
    }
