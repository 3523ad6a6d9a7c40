"""The recovery sweep: re-publish durable work that nobody picked up, reclaim lost steps.

One pass (:func:`sweep`) runs in one transaction that only one process at a
time may hold (``pg_try_advisory_xact_lock`` on PostgreSQL; SQLite serialises
writers anyway), and publishes after commit:

- events still ``accepted`` past the dispatch deadline (the wait grows with each publish);
- steps ``queued`` past the step deadline (``queued_at`` is reset when re-published);
- ``retrying`` steps whose backoff has passed (long backoffs only live in the database);
- ``running`` steps whose lease has passed: their worker is presumed lost,
  ``lost`` + 1, re-queued, or failed (following ``on_error``) past the redelivery cap.

Every worker runs it once when it starts and then every ``sweep_interval_seconds``
from a thread of its main process (:class:`SweepStep`, a Celery bootstep);
``herald sweep`` runs it standalone.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from celery import Celery, bootsteps
from kombu.exceptions import KombuError
from redis.exceptions import RedisError
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from workers.celery_app import make_celery, publish_dispatch
from workers.logs import log_event
from workers.progress import Attempt, Publish, advance, fail_execution, publish_for
from workers.runtime import Runtime
from workers.steps import build_context, publish_messages
from workflows.errors import HeraldError
from workflows.model import ExecutionStatus, Project, StepStatus
from workflows.settings import Settings
from workflows.store import db
from workflows.store import executions as store
from workflows.store.models import Step, utcnow

#: the advisory lock that keeps two sweeps from running at once ("herald" in ASCII)
LOCK_KEY = 0x686572616C64
#: rows of each kind handled per pass
BATCH = 500


@dataclass
class SweepReport:
    """What one pass did."""

    #: another sweep held the lock: this pass did nothing
    skipped: bool = False
    events: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    retries: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """How many rows this pass acted on."""
        return sum(len(x) for x in (self.events, self.queued, self.retries, self.lost, self.failed))


def sweep(rt: Runtime, *, now: datetime | None = None) -> SweepReport:
    """One recovery pass; safe to run on several processes at once."""
    now = now or utcnow()
    report = SweepReport()
    settings = rt.settings
    events: list[str] = []
    publish: list[Publish] = []
    with rt.sessions.begin() as session:
        if not _lock(session):
            report.skipped = True
            return report
        for event in store.stale_events(
            session, now=now, deadline=settings.dispatch_deadline_seconds, limit=BATCH
        ):
            event.publish_count += 1
            events.append(event.id)
        for step in store.stale_queued_steps(
            session, now=now, deadline=settings.step_deadline_seconds, limit=BATCH
        ):
            publish += _requeue(rt, session, step, now)
            report.queued.append(step.id)
        for step in store.due_retries(
            session, now=now, deadline=settings.step_deadline_seconds, limit=BATCH
        ):
            publish += _requeue(rt, session, step, now)
            report.retries.append(step.id)
        for step in store.expired_leases(session, now=now, limit=BATCH):
            step.lost += 1
            if step.lost > settings.redelivery_cap:
                publish += _give_up(rt, session, step, now)
                report.failed.append(step.id)
            else:
                publish += _requeue(rt, session, step, now)
                report.lost.append(step.id)
    report.events = events
    for event_id in events:
        try:
            publish_dispatch(rt.celery, event_id)
        except (KombuError, RedisError, OSError) as exc:
            log_event(
                "sweep.publish_failed",
                level=logging.WARNING,
                event_id=event_id,
                reason=f"{type(exc).__name__}: {exc}",
            )
    publish_messages(rt, publish)
    if report.total:
        log_event(
            "sweep.finished",
            events=len(report.events),
            queued=len(report.queued),
            retries=len(report.retries),
            lost=len(report.lost),
            failed=len(report.failed),
        )
    return report


def _lock(session: Session) -> bool:
    """Take the sweep's transaction-scoped lock; False when another sweep holds it."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(session.scalar(select(func.pg_try_advisory_xact_lock(LOCK_KEY))))


def _requeue(rt: Runtime, session: Session, step: Step, now: datetime) -> list[Publish]:
    """Put a step back in the queue and publish it again (cancelled if its run is over)."""
    execution = store.lock_execution(session, step.execution_id)
    assert execution is not None
    workflow = rt.project.workflows.get(execution.workflow_id)
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
    try:
        task = workflow.task(step.task_id)
    except KeyError:
        return []  # the claim fails it with a clear message
    return [publish_for(step, task)]


def _give_up(rt: Runtime, session: Session, step: Step, now: datetime) -> list[Publish]:
    """Fail a step that lost its worker too often, following its on_error path."""
    execution = store.lock_execution(session, step.execution_id)
    assert execution is not None
    message = (
        f"step lost its worker {step.lost} times (cap {rt.settings.redelivery_cap}); giving up"
    )
    error: dict[str, Any] = {"type": "worker_lost", "message": message, "lost": step.lost}
    step.status, step.error, step.finished_at, step.lease_until = (
        StepStatus.FAILED.value,
        error,
        now,
        None,
    )
    if ExecutionStatus(execution.status).finished:
        return []
    workflow = rt.project.workflows.get(execution.workflow_id)
    try:
        task = workflow.task(step.task_id) if workflow is not None else None
    except KeyError:
        task = None
    if workflow is None or task is None:
        fail_execution(execution, message, kind="worker_lost", now=now)
        return []
    context = build_context(session, execution, workflow, step)
    context["tasks"][task.id] = {"output": None, "status": StepStatus.FAILED.value, "error": error}
    return advance(
        session,
        execution=execution,
        workflow=workflow,
        task=task,
        result=Attempt(ok=False, error=error),
        context=context,
        now=now,
    )


def sweep_runtime(settings: Settings, project: Project, celery: Celery | None = None) -> Runtime:
    """A runtime for a sweep thread: its own engine that keeps no idle connection.

    Pool processes may be forked while the thread lives; with no pooled
    connection there is none for a child to inherit.
    """
    url = db.normalize_url(settings.database_url)
    if url.startswith("sqlite"):
        engine = db.make_engine(url)
    else:
        engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
    return Runtime(
        settings=settings,
        project=project,
        engine=engine,
        sessions=db.make_sessionmaker(engine),
        celery=celery if celery is not None else make_celery(settings),
    )


class Sweeper:
    """Runs :func:`sweep` now and then every ``interval`` seconds in a daemon thread."""

    def __init__(self, rt: Runtime, interval: float) -> None:
        self.rt = rt
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="herald-sweep", daemon=True)

    def start(self) -> None:
        """Start the thread (the first pass runs at once)."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to stop and wait for the pass in progress."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.rt.close()

    def wait(self) -> None:
        """Block until the thread stops (``herald sweep`` in the foreground)."""
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                run_once_logged(self.rt)
            except Exception:
                # A bug in one pass must not end recovery for the life of the process:
                # log it with its traceback and sweep again at the next interval.
                logging.getLogger("herald.sweep").exception("sweep pass crashed")
            self._stop.wait(self.interval)


def run_once_logged(rt: Runtime) -> SweepReport | None:
    """One pass whose failure (database or broker down) is logged, not raised."""
    try:
        return sweep(rt)
    except (SQLAlchemyError, HeraldError, KombuError, RedisError, OSError) as exc:
        log_event("sweep.failed", level=logging.WARNING, reason=f"{type(exc).__name__}: {exc}")
        return None


class SweepStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """A worker bootstep: the sweep thread lives as long as the worker's main process."""

    requires = ("celery.worker.components:Pool",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.sweeper: Sweeper | None = None

    def start(self, parent: Any) -> None:
        """Start sweeping: once now (recover what was in flight), then periodically."""
        from workers import runtime

        config = runtime.configuration()
        if config is None:
            return
        rt = sweep_runtime(config.settings, config.project, config.celery)
        self.sweeper = Sweeper(rt, rt.settings.sweep_interval_seconds)
        self.sweeper.start()

    def stop(self, parent: Any) -> None:
        """Stop the sweep thread."""
        if self.sweeper is not None:
            self.sweeper.stop()
            self.sweeper = None
