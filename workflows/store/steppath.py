"""The common step's two statements on PostgreSQL: claim-and-read, and settle-and-advance.

A plain tool or agent step of a linear workflow costs a statement to claim it
(with everything its run reads) and one to settle it (with what follows), each
its own transaction on an autocommit connection: one round trip each. Both
keep the lock order of the general path (the execution's row before its
step's: a ``SELECT ... FOR UPDATE`` in a CTE that the step's UPDATE joins, so
it is locked first) and the same fences (the claim names the states it takes a
step from, the settle the attempt it records). Anything they do not match
changes nothing, and the caller takes the general path
(:mod:`workflows.engine.claim`, :mod:`workflows.engine.progress`) instead.

The claim's commit alone is asynchronous (``synchronous_commit`` off for its
own transaction, set by the statement itself: no round trip more). Losing it
in a database crash only re-runs the step, which at-least-once allows: the step
is back to queued or retrying as before its claim, the attempt's settle is
fenced, and the sweep publishes the step again. Any later synchronous commit
(the settle's) flushes the WAL the claim wrote, so the window is the run
itself. The settle stays synchronous: a message is published after it, and
must never name work the database lost.

Data-modifying CTEs are PostgreSQL's; SQLite (``herald dev``) always takes the
general path. The statements are built once, with bound parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    CTE,
    JSON,
    Connection,
    Select,
    Table,
    bindparam,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by, insert
from sqlalchemy.engine import RowMapping

from workflows.model import ExecutionStatus, StepStatus
from workflows.store.models import Event, Execution, Step
from workflows.store.steps import CLAIMABLE, FINISHED_WITH_RESULT

#: the execution's columns the claim returns, prefixed (beside the step's own)
EXECUTION_COLUMNS = ("input", "event_id", "trace_id", "step_count")

_RUNNING = ExecutionStatus.RUNNING.value
#: executions whose steps may be claimed (the first claim starts a pending one)
_STARTABLE = (ExecutionStatus.PENDING.value, _RUNNING)


def _tables() -> tuple[Table, Table, Table]:
    return (
        cast(Table, Step.__table__),
        cast(Table, Execution.__table__),
        cast(Table, Event.__table__),
    )


def claim(connection: Connection, params: Mapping[str, Any]) -> RowMapping | None:
    """Claim a queued or retrying top-level step of ``p_task`` in ``p_workflow``; its row.

    The row holds the step's columns as the UPDATE left them, the execution's
    (``execution_<name>`` for :data:`EXECUTION_COLUMNS`, ``started``: whether this
    claim started it), the event's (``event_name``, ``event_received_at``) and
    ``task_results`` (``[[task_id, output, status, error], ...]`` of its finished
    steps in order). None when the step is not claimable as named: not due, not
    queued, of another task, or its execution is finished or not running this workflow.
    """
    return connection.execute(_claim_statement(), params).mappings().first()


@cache
def _claim_statement() -> Select[Any]:
    steps, executions, events = _tables()
    locked = (
        select(
            executions.c.id,
            *(executions.c[name] for name in EXECUTION_COLUMNS),
            events.c.name.label("event_name"),
            events.c.received_at.label("event_received_at"),
        )
        .select_from(
            steps.join(executions, executions.c.id == steps.c.execution_id).outerjoin(
                events, events.c.id == executions.c.event_id
            )
        )
        .where(
            steps.c.id == bindparam("p_step"),
            executions.c.workflow_id == bindparam("p_workflow"),
            executions.c.status.in_(_STARTABLE),
        )
        .with_for_update(of=executions)
        .cte("locked")
    )
    c = steps.c
    due = c.not_before.is_(None) | (c.not_before <= bindparam("p_due", type_=c.not_before.type))
    claimed = (
        update(steps)
        .where(
            c.id == bindparam("p_step"),
            c.execution_id == locked.c.id,
            c.task_id == bindparam("p_task"),
            c.parent_id.is_(None),
            c.status.in_(CLAIMABLE),
            due,
        )
        .values(
            status=StepStatus.RUNNING.value,
            attempts=c.attempts + 1,
            lease_until=bindparam("p_lease", type_=c.lease_until.type),
            worker=bindparam("p_worker", type_=c.worker.type),
            worker_id=bindparam("p_worker_id", type_=c.worker_id.type),
            message_id=bindparam("p_message", type_=c.message_id.type),
            started_at=func.coalesce(c.started_at, bindparam("p_now", type_=c.started_at.type)),
            not_before=None,
        )
        .returning(*steps.columns)
        .cte("claimed")
    )
    e = executions.c
    started = (
        update(executions)
        .where(e.id == claimed.c.execution_id, (e.status != _RUNNING) | e.started_at.is_(None))
        .values(
            status=_RUNNING,
            started_at=func.coalesce(e.started_at, bindparam("p_now", type_=e.started_at.type)),
        )
        .returning(e.id)
        .cte("started")
    )
    finished = steps.alias("finished")
    f = finished.c
    results = (
        select(
            func.json_agg(
                aggregate_order_by(
                    func.json_build_array(f.task_id, f.output, f.status, f.error), f.seq
                ),
                type_=JSON,
            )
        )
        .where(f.execution_id == claimed.c.execution_id, f.status.in_(FINISHED_WITH_RESULT))
        .scalar_subquery()
    )
    return select(
        *claimed.c,
        *(locked.c[name].label(f"execution_{name}") for name in EXECUTION_COLUMNS),
        locked.c.event_name,
        locked.c.event_received_at,
        results.label("task_results"),
        select(func.count()).select_from(started).scalar_subquery().label("started"),
        # this statement's own transaction commits without waiting for its WAL flush
        func.set_config("synchronous_commit", "off", True).label("asynchronous"),
    ).select_from(claimed.join(locked, locked.c.id == claimed.c.execution_id))


def settle(
    connection: Connection, kind: str, params: Mapping[str, Any]
) -> tuple[bool, bool, str | None]:
    """Record an attempt and apply what follows; ``(execution locked, step recorded, next id)``.

    ``kind`` is ``retry`` (the step waits for another attempt), ``next`` (a next
    step is queued, ``p_next_*``) or ``finish`` (the execution ends, ``p_finish_*``).
    The step is recorded only while it runs attempt ``p_attempt``; for ``next``
    and ``finish`` only while its execution is running with ``p_count`` steps,
    the count the decision was made on. The next id is None when that step
    existed already (a no-op insert, as :func:`~workflows.store.steps.queue_step`).
    """
    row = connection.execute(_settle_statement(kind), params).one()
    return bool(row.locked), bool(row.recorded), row.next_id


@cache
def _settle_statement(kind: str) -> Select[Any]:
    steps, executions, _ = _tables()
    e, c = executions.c, steps.c
    locking = select(e.id).where(e.id == bindparam("p_execution"))
    if kind != "retry":  # a retry was never fenced on its execution (as the general path)
        locking = locking.where(e.status == _RUNNING, e.step_count == bindparam("p_count"))
    locked = locking.with_for_update().cte("locked")
    values: dict[str, Any] = {
        name: bindparam(f"p_{name}", type_=c[name].type)
        for name in ("status", "input", "output", "error", "usage", "lease_until")
    }
    if kind == "retry":
        for name in ("not_before", "queued_at", "publish_count"):
            values[name] = bindparam(f"p_{name}", type_=c[name].type)
    else:
        values["finished_at"] = bindparam("p_now", type_=c.finished_at.type)
    recorded = (
        update(steps)
        .where(
            c.id == bindparam("p_step"),
            c.execution_id == locked.c.id,
            c.status == StepStatus.RUNNING.value,
            c.attempts == bindparam("p_attempt"),
        )
        .values(**values)
        .returning(c.id, c.execution_id)
        .cte("recorded")
    )
    columns = [
        select(func.count()).select_from(locked).scalar_subquery().label("locked"),
        select(func.count()).select_from(recorded).scalar_subquery().label("recorded"),
    ]
    if kind == "retry":
        return select(*columns, literal(None).label("next_id"))
    moved = _moved(executions, recorded, kind)
    columns.append(select(func.count()).select_from(moved).scalar_subquery().label("moved"))
    if kind == "finish":
        return select(*columns, literal(None).label("next_id"))
    queued = _queued(steps, recorded)
    return select(*columns, select(queued.c.id).scalar_subquery().label("next_id"))


def _moved(executions: Table, recorded: CTE, kind: str) -> CTE:
    """The execution moved on once the step is recorded: one more step, or finished."""
    e = executions.c
    values: dict[str, Any]
    if kind == "finish":
        values = {
            "status": bindparam("p_finish_status", type_=e.status.type),
            "output": bindparam("p_finish_output", type_=e.output.type),
            "error": bindparam("p_finish_error", type_=e.error.type),
            "finished_at": bindparam("p_now", type_=e.finished_at.type),
        }
    else:
        values = {"step_count": bindparam("p_count", type_=e.step_count.type) + 1}
    return (
        update(executions)
        .where(e.id == recorded.c.execution_id)
        .values(**values)
        .returning(e.id)
        .cte("moved")
    )


def _queued(steps: Table, recorded: CTE) -> CTE:
    """The next step, inserted once the step is recorded (as ``queue_step``'s INSERT)."""
    c = steps.c
    visits = (
        select(func.count() + 1)
        .select_from(steps)
        .where(c.execution_id == bindparam("p_execution"), c.task_id == bindparam("p_next_task"))
        .scalar_subquery()
    )
    values: dict[str, Any] = {
        "id": bindparam("p_next_id", type_=c.id.type),
        "execution_id": recorded.c.execution_id,
        "task_id": bindparam("p_next_task", type_=c.task_id.type),
        "visit": visits,
        "seq": bindparam("p_count", type_=c.seq.type) + 1,
        "status": literal(StepStatus.QUEUED.value),
        "attempts": literal(0),
        "lost": literal(0),
        "cause": bindparam("p_next_cause", type_=c.cause.type),
        "queued_at": bindparam("p_next_queued_at", type_=c.queued_at.type),
        "not_before": bindparam("p_next_not_before", type_=c.not_before.type),
        "publish_count": bindparam("p_next_publish_count", type_=c.publish_count.type),
    }
    source = select(*(value.label(name) for name, value in values.items()))
    return (
        insert(steps)
        .from_select(list(values), source.select_from(recorded))
        .on_conflict_do_nothing()
        .returning(c.id)
        .cte("queued")
    )
