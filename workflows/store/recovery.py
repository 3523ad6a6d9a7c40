"""What the recovery sweep looks for: late events and steps, due retries, lost leases.

Each query locks the rows it returns, skipping those another sweeper holds.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflows.model import StepStatus
from workflows.store.models import Event, Step


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
