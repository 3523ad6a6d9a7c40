"""Data functions for executions and steps: the engine's reads and fenced writes.

Every function takes the caller's session and leaves the transaction to it.
Writes that may race (a redelivered message, two workers) are conditional:
inserts ignore a row that already exists, updates name the state they expect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, Table, Update, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from workflows.ids import new_id
from workflows.model import EventStatus, ExecutionStatus, StepStatus
from workflows.store.models import Base, Event, Execution, Step

#: steps a worker may (re)start
CLAIMABLE = (StepStatus.QUEUED.value, StepStatus.RETRYING.value)
#: steps that have not finished and may be cancelled with their execution
UNFINISHED = (StepStatus.QUEUED.value, StepStatus.RETRYING.value, StepStatus.RUNNING.value)
#: steps whose result a template may read
FINISHED_WITH_RESULT = (
    StepStatus.SUCCEEDED.value,
    StepStatus.FAILED.value,
    StepStatus.TIMED_OUT.value,
)

# The statements a step runs are built once, with bound parameters, and reused:
# building one costs more CPU than executing it (~0.18 ms each here).


def insert_ignore(session: Session, model: type[Base], values: Mapping[str, Any]) -> bool:
    """Insert one row unless it breaks a unique constraint; True when a row was inserted."""
    table = cast(Table, model.__table__)
    stmt = _insert(session, table).values(**values)
    # RETURNING tells whether a row went in (rowcount is not reliable for inserts)
    key = next(iter(table.primary_key.columns))
    return session.connection().execute(stmt.returning(key)).first() is not None


def _insert(session: Session, target: Any) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the session's dialect (PostgreSQL or SQLite)."""
    return _insert_for(session.get_bind().dialect.name, target)


def _insert_for(dialect: str, target: Any) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(target).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(target).on_conflict_do_nothing()
    return insert(target)  # pragma: no cover - herald supports PostgreSQL and SQLite only


def lock_event(session: Session, event_id: str) -> Event | None:
    """The event, locked until the transaction ends (PostgreSQL), or None."""
    return session.get(Event, event_id, with_for_update=True, populate_existing=True)


def lock_execution(session: Session, execution_id: str) -> Execution | None:
    """The execution, locked until the transaction ends (PostgreSQL), or None."""
    return session.get(Execution, execution_id, with_for_update=True, populate_existing=True)


def get_step(session: Session, step_id: str) -> Step | None:
    """The step as the database has it now, or None."""
    return session.get(Step, step_id, populate_existing=True)


def step_with_execution(
    session: Session, step_id: str
) -> tuple[Step, Execution, dict[str, Any]] | None:
    """The step as the database has it now, its execution locked (PostgreSQL), its event.

    :func:`get_step` then :func:`lock_execution` and the event's metadata
    (``{"id", "name", "received_at"}``, ``{}`` without an event) in one round
    trip: the step's row is read as the query found it, the execution's once locked.
    """
    row = session.execute(_step_with_execution(), {"p_step": step_id}).first()
    if row is None:
        return None
    step, execution, name, received_at = row
    event = (
        {"id": execution.event_id, "name": name, "received_at": received_at.isoformat()}
        if name is not None
        else {}
    )
    return step, execution, event


@cache
def _step_with_execution() -> Select[Step, Execution, str, datetime]:
    return (
        select(Step, Execution, Event.name, Event.received_at)
        .join(Execution, Execution.id == Step.execution_id)
        .outerjoin(Event, Event.id == Execution.event_id)
        .where(Step.id == bindparam("p_step"))
        .with_for_update(of=Execution)
        .execution_options(populate_existing=True)
    )


def create_execution(session: Session, values: Mapping[str, Any]) -> bool:
    """Insert an execution under its planned id unless it exists; True when created now."""
    return insert_ignore(session, Execution, values)


def add_step(
    session: Session, execution: Execution, task_id: str, *, now: datetime, cause: Any = None
) -> Step | None:
    """Queue the next visit of ``task_id`` as the execution's next step.

    The step takes position ``step_count + 1`` and visit ``visits so far + 1``
    (counted in the INSERT itself: one round trip); the unique constraints make
    a second insert for the same position a no-op (None is returned then).
    ``execution.step_count`` is advanced.
    """
    seq = execution.step_count + 1
    params = {
        "p_id": new_id("stp"),
        "p_execution": execution.id,
        "p_task": task_id,
        "p_seq": seq,
        "p_cause": cause,
        "p_now": now,
    }
    dialect = session.get_bind().dialect.name
    created = session.scalars(
        _add_step_statement(dialect), params, execution_options={"populate_existing": True}
    ).first()
    execution.step_count = seq
    return created


@cache
def _add_step_statement(dialect: str) -> Any:
    visits = (
        select(func.count() + 1)
        .select_from(Step)
        .where(
            Step.execution_id == bindparam("p_execution"),
            Step.task_id == bindparam("p_task"),
        )
        .scalar_subquery()
    )
    return (
        _insert_for(dialect, Step)
        .values(
            id=bindparam("p_id", type_=Step.id.type),
            execution_id=bindparam("p_execution", type_=Step.execution_id.type),
            task_id=bindparam("p_task", type_=Step.task_id.type),
            visit=visits,
            seq=bindparam("p_seq", type_=Step.seq.type),
            status=StepStatus.QUEUED.value,
            attempts=0,
            lost=0,
            cause=bindparam("p_cause", type_=Step.cause.type),
            queued_at=bindparam("p_now", type_=Step.queued_at.type),
            publish_count=1,
        )
        .returning(Step)
    )


def queued_first_steps(session: Session, execution_ids: Sequence[str]) -> list[Step]:
    """The first steps of these executions that are still queued (to publish, again or not)."""
    if not execution_ids:
        return []
    rows = session.scalars(
        select(Step).where(
            Step.execution_id.in_(execution_ids),
            Step.seq == 1,
            Step.status == StepStatus.QUEUED.value,
        )
    )
    return list(rows)


def claim_step(
    session: Session,
    step_id: str,
    *,
    worker: str,
    now: datetime,
    lease_seconds: float,
    lost: bool = False,
) -> Step | None:
    """Claim a step for one attempt; None when it is not claimable.

    A queued or retrying step (whose ``not_before`` has come, give or take a
    second of clock skew) moves to running with one more attempt. With
    ``lost=True`` a running step is reclaimed as well: its previous worker died,
    so ``lost`` grows by one.
    """
    params = {
        "p_step": step_id,
        "p_due": now + timedelta(seconds=1),
        "p_lease": now + timedelta(seconds=lease_seconds),
        "p_worker": worker,
        "p_now": now,
    }
    # RETURNING the claimed row: no second read
    return session.scalars(
        _claim_statement(lost),
        params,
        execution_options={"synchronize_session": False, "populate_existing": True},
    ).first()


@cache
def _claim_statement(lost: bool) -> Update:
    due: ColumnElement[bool] = Step.not_before.is_(None) | (
        Step.not_before <= bindparam("p_due", type_=Step.not_before.type)
    )
    claimable = Step.status.in_(CLAIMABLE) & due
    if lost:
        claimable = claimable | (Step.status == StepStatus.RUNNING.value)
    values: dict[str, Any] = {
        "status": StepStatus.RUNNING.value,
        "attempts": Step.attempts + 1,
        "lease_until": bindparam("p_lease", type_=Step.lease_until.type),
        "worker": bindparam("p_worker", type_=Step.worker.type),
        "started_at": func.coalesce(
            Step.started_at, bindparam("p_now", type_=Step.started_at.type)
        ),
        "not_before": None,
    }
    if lost:
        values["lost"] = Step.lost + 1
    return (
        update(Step)
        .where(Step.id == bindparam("p_step"), claimable)
        .values(**values)
        .returning(Step)
    )


def record_attempt(session: Session, step_id: str, attempt: int, values: Mapping[str, Any]) -> bool:
    """Write an attempt's result, fenced: only while the step still runs that attempt.

    ``values`` are column values (SQL expressions are not accepted here).
    """
    params = {**values, "p_step": step_id, "p_attempt": attempt}
    # a Core UPDATE whose SET names the keys given: one statement per set of keys
    result = session.connection().execute(_record_statement(), params)
    return bool(result.rowcount)


@cache
def _record_statement() -> Update:
    table = cast(Table, Step.__table__)
    return update(table).where(
        table.c.id == bindparam("p_step"),
        table.c.status == StepStatus.RUNNING.value,
        table.c.attempts == bindparam("p_attempt"),
    )


def task_results(session: Session, execution_id: str) -> dict[str, dict[str, Any]]:
    """``{task_id: {"output", "status", "error"}}`` of finished steps, the latest visit winning."""
    rows = session.execute(_task_results(), {"p_execution": execution_id})
    return {
        task_id: {"output": output, "status": status, "error": error}
        for task_id, output, status, error in rows
    }


@cache
def _task_results() -> Select[str, Any, str, Any]:
    return (
        select(Step.task_id, Step.output, Step.status, Step.error)
        .where(
            Step.execution_id == bindparam("p_execution"),
            Step.status.in_(FINISHED_WITH_RESULT),
        )
        .order_by(Step.seq)
    )


def step_at(session: Session, execution_id: str, seq: int) -> Step | None:
    """The execution's step at position ``seq``, or None."""
    return session.scalars(
        select(Step).where(Step.execution_id == execution_id, Step.seq == seq)
    ).first()


def steps_of(session: Session, execution_id: str) -> list[Step]:
    """Every step of an execution, in order."""
    return list(
        session.scalars(select(Step).where(Step.execution_id == execution_id).order_by(Step.seq))
    )


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


def cancel_unfinished_steps(session: Session, execution_id: str, *, now: datetime) -> int:
    """Cancel the execution's queued and retrying steps; running ones finish on their own."""
    result = session.execute(
        update(Step)
        .where(Step.execution_id == execution_id, Step.status.in_(CLAIMABLE))
        .values(status=StepStatus.CANCELLED.value, finished_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def list_executions(
    session: Session,
    *,
    workflow: str | None = None,
    status: str | None = None,
    event: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> list[Execution]:
    """Executions newest first, filtered; ``after`` is the last id of the previous page."""
    query = select(Execution).order_by(Execution.id.desc()).limit(limit)
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
    cancel_unfinished_steps(session, execution.id, now=now)


def last_failed_step(session: Session, execution_id: str) -> Step | None:
    """The execution's latest step that failed or timed out (where a retry resumes)."""
    return session.scalars(
        select(Step)
        .where(
            Step.execution_id == execution_id,
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
    still ``accepted`` are looked at (the newest ``scan`` of them).
    """
    events = session.scalars(
        select(Event)
        .where(Event.status == EventStatus.ACCEPTED.value)
        .order_by(Event.received_at.desc())
        .limit(scan)
    )
    for event in events:
        for route in event.routes:
            if route.get("execution_id") == execution_id:
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


# --- what the recovery sweep looks for -------------------------------------------------


def stale_events(session: Session, *, now: datetime, deadline: float, limit: int) -> list[Event]:
    """Accepted events not dispatched in time; the wait doubles with each publish."""
    rows = session.scalars(
        select(Event)
        .where(Event.status == "accepted")
        .order_by(Event.received_at)
        .limit(limit * 4)
        .with_for_update(skip_locked=True)
    )
    due = []
    for event in rows:
        wait = timedelta(seconds=deadline * 2 ** min(event.publish_count, 6))
        if event.received_at <= now - wait:
            due.append(event)
    return due[:limit]


def stale_queued_steps(
    session: Session, *, now: datetime, deadline: float, limit: int
) -> list[Step]:
    """Queued steps that nobody started within the deadline."""
    return list(
        session.scalars(
            select(Step)
            .where(
                Step.status == StepStatus.QUEUED.value,
                Step.queued_at <= now - timedelta(seconds=deadline),
            )
            .order_by(Step.queued_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def due_retries(session: Session, *, now: datetime, deadline: float, limit: int) -> list[Step]:
    """Retrying steps to release: a long backoff has passed, or a countdown message went missing.

    A retry published with a countdown has ``queued_at == not_before`` (when it
    is due to start); it is only stale ``deadline`` seconds later. A longer
    backoff was not published (``queued_at`` is the failure time): it is due as
    soon as ``not_before`` passes.
    """
    stale = now - timedelta(seconds=deadline)
    return list(
        session.scalars(
            select(Step)
            .where(
                Step.status == StepStatus.RETRYING.value,
                Step.not_before <= now,
                (Step.queued_at < Step.not_before) | (Step.queued_at <= stale),
            )
            .order_by(Step.not_before)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def expired_leases(session: Session, *, now: datetime, limit: int) -> list[Step]:
    """Running steps whose lease has passed: their worker is presumed lost."""
    return list(
        session.scalars(
            select(Step)
            .where(Step.status == StepStatus.RUNNING.value, Step.lease_until < now)
            .order_by(Step.lease_until)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
