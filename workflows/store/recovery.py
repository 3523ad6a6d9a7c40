"""What the recovery sweep looks for: late events and steps, due retries, dead workers, leases.

Each query locks what it returns, skipping rows another transaction holds. The
step queries keep herald's one lock order, execution before step: they lock the
executions of the candidate steps first (``SKIP LOCKED``: an execution a worker
is claiming or settling waits for the next pass), then the steps themselves,
re-checking the condition under the execution's lock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from workflows.model import EventStatus, StepStatus
from workflows.store import workers
from workflows.store.models import Event, Execution, Step, Worker

#: publishes after which an event's wait stops doubling
BACKOFF_CAP = 6
#: a step the sweep acts on, with its execution (locked, in that order)
Found = tuple[Step, Execution]


def publish_stale_events(
    session: Session, *, now: datetime, deadline: float, limit: int
) -> list[str]:
    """Count a publish on the oldest accepted events not dispatched in time; their ids.

    The wait doubles with each publish: ``deadline * 2 ** min(publish_count,
    BACKOFF_CAP)`` since the last one (the receipt, when only the API
    published). It is decided in the query (one clause per count), so events
    still waiting never crowd out due ones behind them and a backlog older
    than the waits is published once; one UPDATE ... RETURNING per batch, no
    payload read.
    """
    last = func.coalesce(Event.published_at, Event.received_at)

    def waited(seconds: float) -> ColumnElement[bool]:
        return last <= now - timedelta(seconds=seconds)

    due = or_(
        *(
            (Event.publish_count == count) & waited(deadline * 2**count)
            for count in range(BACKOFF_CAP)
        ),
        (Event.publish_count >= BACKOFF_CAP) & waited(deadline * 2**BACKOFF_CAP),
    )
    oldest = (
        select(Event.id)
        .where(Event.status == EventStatus.ACCEPTED.value, due)
        .order_by(Event.received_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = session.execute(
        update(Event)
        .where(Event.id.in_(oldest.scalar_subquery()))
        .values(publish_count=Event.publish_count + 1, published_at=now)
        .returning(Event.id, Event.received_at)
        .execution_options(synchronize_session=False)
    )
    return [event_id for event_id, _ in sorted(rows, key=lambda row: row[1])]


def uncount_publishes(session: Session, event_ids: list[str]) -> None:
    """Dispatches counted by a pass were not published after all: due again at once."""
    if event_ids:
        session.execute(
            update(Event)
            .where(Event.id.in_(event_ids), Event.publish_count > 0)
            .values(publish_count=Event.publish_count - 1, published_at=None)
            .execution_options(synchronize_session=False)
        )


def stale_queued_steps(
    session: Session, *, now: datetime, deadline: float, limit: int
) -> list[Found]:
    """Queued steps that nobody started within the deadline."""
    return _locked(
        session,
        (
            Step.status == StepStatus.QUEUED.value,
            Step.queued_at <= now - timedelta(seconds=deadline),
        ),
        Step.queued_at,
        limit,
    )


def due_retries(session: Session, *, now: datetime, deadline: float, limit: int) -> list[Found]:
    """Retrying steps to release: a long backoff has passed, or a countdown message went missing.

    A retry published with a countdown has ``queued_at == not_before`` (when it
    is due to start); it is only stale ``deadline`` seconds later. A longer
    backoff was not published (``queued_at`` is the failure time): it is due as
    soon as ``not_before`` passes.
    """
    stale = now - timedelta(seconds=deadline)
    return _locked(
        session,
        (
            Step.status == StepStatus.RETRYING.value,
            Step.not_before <= now,
            (Step.queued_at < Step.not_before) | (Step.queued_at <= stale),
        ),
        Step.not_before,
        limit,
    )


def due_delays(session: Session, *, now: datetime, limit: int) -> list[Found]:
    """Delayed steps never published (a delay or sleep too long for a countdown) now due.

    They were queued with ``publish_count`` 0 and ``queued_at == not_before``.
    """
    return _locked(
        session,
        (
            Step.status == StepStatus.QUEUED.value,
            Step.queued_at <= now,
            Step.publish_count == 0,
            Step.not_before <= now,
        ),
        Step.not_before,
        limit,
    )


def steps_of_dead_workers(
    session: Session, *, now: datetime, dead_after: float, limit: int
) -> list[Found]:
    """Running steps whose worker is gone: silent for ``dead_after`` seconds, or stopped.

    A step claimed by no known worker (``worker_id`` empty, or its row pruned)
    is left to its lease.
    """
    gone = select(Worker.id).where(workers.dead(now, dead_after))
    return _locked(
        session,
        (Step.status == StepStatus.RUNNING.value, Step.worker_id.in_(gone.scalar_subquery())),
        Step.started_at,
        limit,
    )


def running_steps_of(session: Session, worker_id: str, *, limit: int) -> list[Found]:
    """The steps ``worker_id`` is running, to hand back when it stops."""
    return _locked(
        session,
        (Step.status == StepStatus.RUNNING.value, Step.worker_id == worker_id),
        Step.started_at,
        limit,
    )


def due_wait_timeouts(session: Session, *, now: datetime, limit: int) -> list[Found]:
    """Wait steps whose timeout (``not_before``) has passed with no matching event."""
    return _locked(
        session,
        (
            Step.status == StepStatus.WAITING.value,
            Step.wait_event.is_not(None),
            Step.not_before <= now,
        ),
        Step.not_before,
        limit,
    )


def expired_leases(session: Session, *, now: datetime, limit: int) -> list[Found]:
    """Running steps whose lease has passed: their worker is presumed lost."""
    return _locked(
        session,
        (Step.status == StepStatus.RUNNING.value, Step.lease_until < now),
        Step.lease_until,
        limit,
    )


def _locked(
    session: Session, where: tuple[ColumnElement[bool], ...], order: Any, limit: int
) -> list[Found]:
    """The oldest ``limit`` steps matching ``where``, their executions locked before them."""
    candidates = select(Step.execution_id).where(*where).order_by(order).limit(limit)
    executions = {
        execution.id: execution
        for execution in session.scalars(
            select(Execution)
            .where(Execution.id.in_(candidates))
            .order_by(Execution.id)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
    }
    if not executions:
        return []
    steps = session.scalars(
        select(Step)
        .where(*where, Step.execution_id.in_(list(executions)))
        .order_by(order)
        .limit(limit)
        .with_for_update()
    )
    return [(step, executions[step.execution_id]) for step in steps]
