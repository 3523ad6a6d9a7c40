"""The worker fleet in the state store: registration, heartbeats, who is alive, what each runs.

Every ``herald worker`` writes its row when it starts, refreshes ``last_seen_at``
every few seconds and sets ``stopped_at`` when it stops cleanly. How the fleet
looks follows from those times alone (:class:`WorkerState`): a worker not seen
for ``dead_after`` seconds and never stopped is *stale*, and the recovery sweep
requeues the steps it held (:func:`workflows.store.recovery.steps_of_dead_workers`).
Times are the writers' clocks, as for step leases: hosts must agree within a
second or two (NTP).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Connection, case, delete, func, or_, select, update
from sqlalchemy.orm import Session

from workflows.model import StepStatus
from workflows.store.models import Execution, Step, Worker


class WorkerStatus(StrEnum):
    """What a worker says about itself (the ``status`` column)."""

    RUNNING = "running"  # consuming its queues
    STOPPING = "stopping"  # told to stop: consumes nothing more, lets its steps finish
    STOPPED = "stopped"  # shut down cleanly; holds no step


class WorkerState(StrEnum):
    """How the fleet sees a worker: its status and how recently it was heard from."""

    ALIVE = "alive"  # heard from within dead_after seconds
    STALE = "stale"  # silent for dead_after seconds without stopping: presumed dead
    STOPPED = "stopped"  # shut down cleanly


def register(db: Session | Connection, values: Mapping[str, Any]) -> None:
    """Insert a starting worker's row (``id``, ``hostname``, ``pid``, ``host``, ...)."""
    connection = db.connection() if isinstance(db, Session) else db
    table = Worker.metadata.tables[Worker.__tablename__]
    connection.execute(table.insert(), dict(values))


def beat(
    db: Session | Connection, worker_id: str, *, now: datetime, status: WorkerStatus | None = None
) -> bool:
    """Record a heartbeat (and a new status, when given); False if the row is gone."""
    connection = db.connection() if isinstance(db, Session) else db
    values: dict[str, Any] = {"last_seen_at": now}
    if status is not None:
        values["status"] = status.value
        if status is WorkerStatus.STOPPED:
            values["stopped_at"] = now
    result = connection.execute(update(Worker).where(Worker.id == worker_id).values(**values))
    return bool(result.rowcount)


def dead(now: datetime, dead_after: float) -> ColumnElement[bool]:
    """Workers that hold no step any more: stopped, or silent for ``dead_after`` seconds."""
    return or_(
        Worker.stopped_at.is_not(None),
        Worker.last_seen_at < now - timedelta(seconds=dead_after),
    )


def state_of(worker: Worker, *, now: datetime, dead_after: float) -> WorkerState:
    """How the fleet sees ``worker`` at ``now``."""
    if worker.stopped_at is not None:
        return WorkerState.STOPPED
    if worker.last_seen_at < now - timedelta(seconds=dead_after):
        return WorkerState.STALE
    return WorkerState.ALIVE


def list_workers(
    session: Session,
    *,
    now: datetime,
    dead_after: float,
    state: WorkerState | None = None,
    before_id: str | None = None,
    limit: int = 50,
) -> list[Worker]:
    """Workers newest first (ids sort by start), filtered by state; ``before_id`` pages."""
    query = select(Worker).order_by(Worker.id.desc()).limit(limit)
    cutoff = now - timedelta(seconds=dead_after)
    if state is WorkerState.STOPPED:
        query = query.where(Worker.stopped_at.is_not(None))
    elif state is WorkerState.STALE:
        query = query.where(Worker.stopped_at.is_(None), Worker.last_seen_at < cutoff)
    elif state is WorkerState.ALIVE:
        query = query.where(Worker.stopped_at.is_(None), Worker.last_seen_at >= cutoff)
    if before_id is not None:
        query = query.where(Worker.id < before_id)
    return list(session.scalars(query))


def count_by_state(session: Session, *, now: datetime, dead_after: float) -> dict[str, int]:
    """How many workers are in each :class:`WorkerState` (every state present, 0 or more)."""
    cutoff = now - timedelta(seconds=dead_after)
    state = case(
        (Worker.stopped_at.is_not(None), WorkerState.STOPPED.value),
        (Worker.last_seen_at < cutoff, WorkerState.STALE.value),
        else_=WorkerState.ALIVE.value,
    )
    counts = {member.value: 0 for member in WorkerState}
    for name, count in session.execute(select(state, func.count()).group_by(state)):
        counts[str(name)] = int(count)
    return counts


def running_steps(
    session: Session, worker_ids: Sequence[str], *, visible: ColumnElement[bool] | None = None
) -> dict[str, list[Step]]:
    """The steps each of these workers is running now (as the database has it), oldest first.

    ``visible`` (a clause on ``executions``) keeps the steps of the executions a reader may see.
    """
    if not worker_ids:
        return {}
    query = (
        select(Step)
        .where(Step.status == StepStatus.RUNNING.value, Step.worker_id.in_(list(worker_ids)))
        .order_by(Step.started_at, Step.id)
    )
    if visible is not None:
        query = query.join(Execution, Execution.id == Step.execution_id).where(visible)
    rows = session.scalars(query)
    found: dict[str, list[Step]] = {}
    for step in rows:
        assert step.worker_id is not None
        found.setdefault(step.worker_id, []).append(step)
    return found


def running_counts(session: Session, worker_ids: Sequence[str]) -> dict[str, int]:
    """How many steps each of these workers is running now (those with none are absent)."""
    if not worker_ids:
        return {}
    rows = session.execute(
        select(Step.worker_id, func.count())
        .where(Step.status == StepStatus.RUNNING.value, Step.worker_id.in_(list(worker_ids)))
        .group_by(Step.worker_id)
    )
    return {str(worker_id): int(count) for worker_id, count in rows}


def prune(session: Session, *, before: datetime) -> int:
    """Forget workers last heard from (stopped, or stale) before ``before``; how many went."""
    result = session.execute(
        delete(Worker)
        .where(Worker.last_seen_at < before)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
