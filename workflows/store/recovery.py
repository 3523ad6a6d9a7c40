"""What the recovery sweep looks for: late events and steps, due retries, lost leases.

Each query locks what it returns, skipping rows another transaction holds. The
step queries keep herald's one lock order, execution before step: they lock the
executions of the candidate steps first (``SKIP LOCKED``: an execution a worker
is claiming or settling waits for the next pass), then the steps themselves,
re-checking the condition under the execution's lock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from workflows.model import EventStatus, StepStatus
from workflows.store.models import Event, Execution, Step

#: a step the sweep acts on, with its execution (locked, in that order)
Found = tuple[Step, Execution]


def stale_events(session: Session, *, now: datetime, deadline: float, limit: int) -> list[Event]:
    """Accepted events not dispatched in time; the wait doubles with each publish."""
    rows = session.scalars(
        select(Event)
        .where(Event.status == EventStatus.ACCEPTED.value)
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
