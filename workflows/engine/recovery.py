"""The recovery pass: durable work that nobody picked up goes back to the broker.

One pass (:func:`sweep`) runs in the caller's transaction, which only one
process at a time may hold (``pg_try_advisory_xact_lock`` on PostgreSQL;
SQLite serialises writers anyway), and returns what to publish after commit:

- events still ``accepted`` past the dispatch deadline (the wait grows with each publish);
- steps ``queued`` past the step deadline (``queued_at`` is reset when re-published);
- ``retrying`` steps whose backoff has passed (long backoffs only live in the database);
- delayed steps (a ``delay`` or a ``sleep`` too long for a countdown) now due;
- ``wait`` steps past their timeout: timed out, down ``on_timeout`` (else ``on_error``);
- ``running`` steps whose worker is dead (no heartbeat for ``worker_dead_after_seconds``,
  or stopped) or whose lease has passed: ``lost`` + 1, re-queued, or failed
  (following ``on_error``) past the redelivery cap. The heartbeat finds a dead
  worker within seconds; the lease is the fallback for a step no live worker row vouches for;
- rejection rows older than ``HERALD_REJECTION_TTL``, and rows of workers gone for a week: deleted.

The Celery side runs it from a thread of every worker and as ``herald sweep``.
:func:`hand_back` is what a worker that stops does with the steps it could not finish.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from workflows.engine.messages import Dispatch, Message, Publish, run_message
from workflows.engine.progress import fail_execution, give_up, lost_too_often
from workflows.engine.waits import time_out
from workflows.model import ExecutionStatus, Project, StepStatus
from workflows.settings import Settings
from workflows.store import recovery as found
from workflows.store import workers
from workflows.store.models import Execution, Step
from workflows.store.rejections import prune_rejections

#: the advisory lock that keeps two sweeps from running at once ("herald" in ASCII)
LOCK_KEY = 0x686572616C64
#: rows of each kind handled per pass
BATCH = 500
#: how long the rows of workers that stopped or died are kept (``GET /api/v1/workers``)
WORKER_RETENTION = timedelta(days=7)


@dataclass
class SweepReport:
    """What one pass did, and the messages to publish once it has committed."""

    #: another sweep held the lock: this pass did nothing
    skipped: bool = False
    events: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    retries: list[str] = field(default_factory=list)
    #: running steps of dead workers, requeued
    orphaned: list[str] = field(default_factory=list)
    #: running steps whose lease passed, requeued
    lost: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    #: delayed steps released (their delay was too long for a countdown)
    delayed: list[str] = field(default_factory=list)
    #: wait steps timed out
    waits: list[str] = field(default_factory=list)
    #: rejection rows deleted past their time to live
    pruned: int = 0
    publish: list[Message] = field(default_factory=list)
    #: a kind filled its batch: more may be due at once
    more: bool = False

    @property
    def total(self) -> int:
        """How many rows this pass acted on."""
        kinds = (
            self.events,
            self.queued,
            self.retries,
            self.orphaned,
            self.lost,
            self.failed,
            self.delayed,
            self.waits,
        )
        return sum(len(x) for x in kinds)


def sweep(
    session: Session,
    project: Project,
    settings: Settings,
    *,
    now: datetime,
    batch: int = BATCH,
    judge_workers: bool = True,
) -> SweepReport:
    """One recovery pass in the caller's transaction; safe on several processes at once.

    ``judge_workers=False`` leaves the steps of silent workers alone in this pass:
    a caller that could not reach the database for a while cannot tell a dead
    worker from one whose heartbeats failed for the same reason.
    """
    report = SweepReport()
    if not _lock(session):
        report.skipped = True
        return report
    events = found.publish_stale_events(
        session, now=now, deadline=settings.dispatch_deadline_seconds, limit=batch
    )
    report.events = events
    report.publish += [Dispatch(event_id) for event_id in events]
    deadline = settings.step_deadline_seconds
    queued = found.stale_queued_steps(session, now=now, deadline=deadline, limit=batch)
    for step, execution in queued:
        report.publish += requeue(project, execution, step, now=now)
        report.queued.append(step.id)
    retries = found.due_retries(session, now=now, deadline=deadline, limit=batch)
    for step, execution in retries:
        report.publish += requeue(project, execution, step, now=now)
        report.retries.append(step.id)
    delayed = found.due_delays(session, now=now, limit=batch)
    for step, execution in delayed:
        report.publish += requeue(project, execution, step, now=now)
        report.delayed.append(step.id)
    waits = found.due_wait_timeouts(session, now=now, limit=batch)
    for step, execution in waits:
        report.publish += time_out(session, project, execution, step, now=now)
        report.waits.append(step.id)
    orphans: list[found.Found] = []
    if judge_workers:
        dead_after = settings.worker_dead_after_seconds
        orphans = found.steps_of_dead_workers(session, now=now, dead_after=dead_after, limit=batch)
        _reclaim(session, project, settings, orphans, report.orphaned, report, now=now)
        workers.prune(session, before=now - WORKER_RETENTION)
    leases = found.expired_leases(session, now=now, limit=batch)
    _reclaim(session, project, settings, leases, report.lost, report, now=now)
    report.pruned = prune_rejections(
        session, before=now - timedelta(seconds=settings.rejection_ttl_seconds), limit=batch
    )
    kinds = (events, queued, retries, delayed, waits, orphans, leases)
    report.more = report.pruned >= batch or any(len(kind) >= batch for kind in kinds)
    return report


def _reclaim(
    session: Session,
    project: Project,
    settings: Settings,
    steps: Sequence[found.Found],
    requeued: list[str],
    report: SweepReport,
    *,
    now: datetime,
) -> None:
    """Running steps whose worker is gone: ``lost`` + 1, requeued, or given up past the cap."""
    for step, execution in steps:
        step.lost += 1
        if step.lost > settings.redelivery_cap:
            message = lost_too_often(step, settings.redelivery_cap)
            report.publish += give_up(session, project, execution, step, message, now=now)
            report.failed.append(step.id)
        else:
            report.publish += requeue(project, execution, step, now=now)
            requeued.append(step.id)


def hand_back(
    session: Session, project: Project, worker_id: str, *, now: datetime
) -> tuple[list[Step], list[Publish]]:
    """Requeue the steps ``worker_id`` is still running: it stops before they finish.

    The worker is alive and leaving, not lost: ``lost`` is not counted. Their
    attempts end here (a result recorded later is fenced off). Returns the steps
    handed back (each still names, in ``message_id``, the message its interrupted
    attempt came by) and their new run messages, to publish after commit.
    """
    handed: list[Step] = []
    publish: list[Publish] = []
    for step, execution in found.running_steps_of(session, worker_id, limit=BATCH):
        publish += requeue(project, execution, step, now=now)
        handed.append(step)
    return handed, publish


def requeue(project: Project, execution: Execution, step: Step, *, now: datetime) -> list[Publish]:
    """Put a step back in the queue to publish again (cancelled if its run is over).

    The caller holds the execution's lock, then the step's.
    """
    workflow = project.workflows.get(execution.workflow_id)
    if ExecutionStatus(execution.status).finished or workflow is None:
        step.status, step.finished_at, step.lease_until = StepStatus.CANCELLED.value, now, None
        if workflow is None and not ExecutionStatus(execution.status).finished:
            fail_execution(
                execution,
                f"workflow {execution.workflow_id!r} is no longer defined",
                kind="definition_missing",
                now=now,
            )
        return []
    step.status = StepStatus.QUEUED.value
    step.queued_at, step.not_before, step.lease_until = now, None, None
    step.publish_count += 1
    task = workflow.find_task(step.task_id)
    if task is None:
        return []  # the claim fails it
    return [run_message(step.id, task, workflow_id=workflow.id)]


def uncount(session: Session, unsent: Sequence[Message]) -> None:
    """Messages of a pass that could not be published: their events' waits do not grow.

    A step left queued is found again once the step deadline passes.
    """
    found.uncount_publishes(session, [m.event_id for m in unsent if isinstance(m, Dispatch)])


def end_leases(session: Session, *, now: datetime) -> int:
    """End the lease of every running step now: their process is known to be gone.

    ``herald dev`` owns its database alone, so at start every step still
    ``running`` belonged to the process that stopped; the next pass reclaims
    them at once (``lost`` + 1, as in production) instead of waiting out the lease.
    Executions are locked before their steps.
    """
    running = select(Step.execution_id).where(Step.status == StepStatus.RUNNING.value)
    session.execute(
        select(Execution.id)
        .where(Execution.id.in_(running))
        .order_by(Execution.id)
        .with_for_update()
    )
    result = session.execute(
        update(Step)
        .where(Step.status == StepStatus.RUNNING.value)
        .values(lease_until=now - timedelta(seconds=1))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _lock(session: Session) -> bool:
    """Take the sweep's transaction-scoped lock; False when another sweep holds it."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(session.scalar(select(func.pg_try_advisory_xact_lock(LOCK_KEY))))
