"""The recovery sweep on the Celery side: passes of the engine's recovery, then publish.

Each pass (:func:`workflows.engine.recovery.sweep`) runs in its own transaction
and its messages are published after that commit; passes follow each other at
once while a kind of work fills its batch, so a backlog drains at broker speed.
Every worker runs it once when it starts and then every ``sweep_interval_seconds``
from a thread of its main process (:class:`SweepStep`, a Celery bootstep);
``herald sweep`` runs it standalone.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any

from celery import Celery, bootsteps
from kombu.exceptions import KombuError
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from workers import metrics
from workers.celery_app import make_celery
from workers.logs import log_event
from workers.publish import publish
from workers.runtime import Runtime
from workflows.engine import recovery
from workflows.engine.recovery import SweepReport
from workflows.errors import HeraldError
from workflows.metrics import executions_finished
from workflows.model import Project
from workflows.settings import Settings
from workflows.store import db
from workflows.store.executions import finished_in
from workflows.store.models import utcnow

#: passes one sweep may chain while work keeps filling the batch
MAX_PASSES = 1000


def sweep(rt: Runtime, *, now: datetime | None = None, judge_workers: bool = True) -> SweepReport:
    """Recovery passes until nothing more is due; what they did, added up.

    A pass whose publishes fail (the broker is down) ends the chain, and the
    events it could not publish get their count back, so an outage does not
    push their next try further out. ``judge_workers=False`` leaves the steps of
    silent workers alone (see :class:`Sweeper`).
    """
    total = SweepReport()
    for _ in range(MAX_PASSES):
        with rt.sessions.begin() as session:
            report = recovery.sweep(
                session,
                rt.project,
                rt.settings,
                now=now or utcnow(),
                judge_workers=judge_workers,
            )
            finished = finished_in(session)
        if report.skipped:
            total.skipped = not total.total
            break
        metrics.swept(report)  # committed: what it did stands, published or not
        executions_finished(finished)
        unsent = publish(rt, report.publish)
        kinds = ("events", "queued", "retries", "orphaned", "lost", "failed", "delayed", "waits")
        for kind in kinds:
            getattr(total, kind).extend(getattr(report, kind))
        total.pruned += report.pruned
        if unsent:
            # the broker is down: these events wait no longer for it, and the chain stops
            with rt.sessions.begin() as session:
                recovery.uncount(session, unsent)
            break
        if not report.more:
            break
    if total.total or total.pruned:
        log_event(
            "sweep.finished",
            rejections_pruned=total.pruned,
            events=len(total.events),
            queued=len(total.queued),
            retries=len(total.retries),
            orphaned=len(total.orphaned),
            lost=len(total.lost),
            failed=len(total.failed),
            delayed=len(total.delayed),
            waits_timed_out=len(total.waits),
        )
    return total


def sweep_runtime(settings: Settings, project: Project, celery: Celery | None = None) -> Runtime:
    """A runtime for a sweep thread: its own engine that keeps no idle connection.

    Pool processes may be forked while the thread lives; with no pooled
    connection there is none for a child to inherit. Without a Celery app given,
    it publishes through its own, which sends no "task-sent" event per message:
    that would double the broker round trips of draining a backlog, and Flower
    still sees each task when a worker receives it.
    """
    engine = db.make_unpooled_engine(settings.database_url)
    return Runtime(
        settings=settings,
        project=project,
        engine=engine,
        sessions=db.make_sessionmaker(engine),
        celery=celery if celery is not None else _publisher(settings),
    )


def _publisher(settings: Settings) -> Celery:
    celery = make_celery(settings)
    celery.conf.task_send_sent_event = False
    return celery


class Sweeper:
    """Runs :func:`sweep` now and then every ``interval`` seconds in a daemon thread.

    It judges workers by their heartbeats only once its own passes have reached
    the database for ``worker_dead_after_seconds`` in a row: after an outage of
    the database (or of this host's way to it) every worker's heartbeats look
    old, and the live ones need that long to be heard from again.
    """

    def __init__(self, rt: Runtime, interval: float) -> None:
        self.rt = rt
        self.interval = interval
        #: monotonic time since which every pass reached the database (None: the last failed)
        self._reachable_since: float | None = None
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
            started = time.monotonic()
            since, dead_after = self._reachable_since, self.rt.settings.worker_dead_after_seconds
            judge = since is not None and started - since >= dead_after
            report = None
            try:
                report = run_once_logged(self.rt, judge_workers=judge)
            except Exception:
                # A bug in one pass must not end recovery for the life of the process:
                # log it with its traceback and sweep again at the next interval.
                logging.getLogger("herald.sweep").exception("sweep pass crashed")
            if report is None:
                self._reachable_since = None
            elif self._reachable_since is None:
                self._reachable_since = started
            self._stop.wait(self.interval)


def run_once_logged(rt: Runtime, *, judge_workers: bool = True) -> SweepReport | None:
    """One pass whose failure (database or broker down) is logged, not raised."""
    try:
        return sweep(rt, judge_workers=judge_workers)
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
        # an in-process broker is only reachable through the worker's own app
        shared = config.celery if config.settings.broker_url.startswith("memory") else None
        rt = sweep_runtime(config.settings, config.project, shared)
        self.sweeper = Sweeper(rt, rt.settings.sweep_interval_seconds)
        self.sweeper.start()

    def stop(self, parent: Any) -> None:
        """Stop the sweep thread."""
        if self.sweeper is not None:
            self.sweeper.stop()
            self.sweeper = None
