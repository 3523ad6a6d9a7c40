"""A worker's heartbeat in PostgreSQL: its row in ``workers``, refreshed by a thread.

The thread lives in the worker's main process and beats every
``heartbeat_interval_seconds``, whatever the pool does: a tool that runs for
minutes runs in a pool process (prefork) or in another thread, never in this
one. A worker silent for ``worker_dead_after_seconds`` is presumed dead, and
the sweep requeues the steps it held; a clean shutdown marks it stopped.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from importlib import metadata
from typing import Any

from celery import bootsteps
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from workers import shutdown
from workers.logs import log_event
from workers.runtime import Runtime
from workers.sweep import sweep_runtime
from workflows.store import db
from workflows.store import workers as fleet
from workflows.store.models import utcnow
from workflows.store.workers import WorkerStatus

#: pool implementation modules of Celery -> the names ``herald worker -P`` takes
_POOLS = {"prefork": "prefork", "thread": "threads", "solo": "solo"}


class Heartbeat:
    """This worker's row: written at start, refreshed by a daemon thread, marked stopped at the end.

    ``row`` holds the columns that do not change (:func:`describe` builds it).
    """

    def __init__(
        self, engine: Engine, row: dict[str, Any], *, interval: float, dead_after: float
    ) -> None:
        self.engine = engine
        self.row = row
        self.worker_id: str = row["id"]
        self.interval = interval
        self.dead_after = dead_after
        self.status = WorkerStatus.RUNNING
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last_beat = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="herald-heartbeat", daemon=True)

    def start(self) -> None:
        """Write the row now (a failure is retried by the next beat), then beat periodically."""
        self.beat()
        self._thread.start()

    def stopping(self) -> None:
        """Say at once that this worker is stopping (it still beats while its steps finish)."""
        self.status = WorkerStatus.STOPPING
        self.beat()

    def stop(self) -> None:
        """Stop beating and mark the row stopped: this worker holds no step any more."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.interval + 10)
        self.status = WorkerStatus.STOPPED
        self.beat()
        self.engine.dispose()

    def beat(self) -> bool:
        """One heartbeat (re-inserting a missing row); False if the database is unreachable."""
        with self._lock:
            now = utcnow()
            try:
                with db.autocommit(self.engine) as connection:
                    if not fleet.beat(connection, self.worker_id, now=now, status=self.status):
                        fleet.register(
                            connection,
                            {
                                **self.row,
                                "status": self.status.value,
                                "last_seen_at": now,
                                "stopped_at": now if self.status is WorkerStatus.STOPPED else None,
                            },
                        )
            except SQLAlchemyError as exc:
                log_event(
                    "worker.heartbeat_failed",
                    level=logging.WARNING,
                    worker_id=self.worker_id,
                    reason=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
                )
                return False
            silent = time.monotonic() - self._last_beat
            self._last_beat = time.monotonic()
        if silent > self.dead_after:
            # the fleet took this worker for dead meanwhile: its steps may run again elsewhere
            log_event(
                "worker.heartbeat_lapsed",
                level=logging.WARNING,
                worker_id=self.worker_id,
                silent_seconds=round(silent, 1),
            )
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception:
                # a bug in one beat must not silence the worker for the rest of its life
                logging.getLogger("herald.heartbeat").exception("heartbeat crashed")


def describe(worker: Any, worker_id: str) -> dict[str, Any]:
    """The fixed columns of a Celery ``WorkController``'s row in ``workers``."""
    pool_cls = worker.pool_cls
    # a name until the Pool bootstep resolves it, then the pool's class
    name = pool_cls if isinstance(pool_cls, str) else (getattr(pool_cls, "__module__", "") or "")
    name = name.rsplit(".", 1)[-1]
    pool = _POOLS.get(name, name or "unknown")
    queues = getattr(worker.app.amqp.queues, "consume_from", None) or worker.app.amqp.queues
    return {
        "id": worker_id,
        "hostname": str(worker.hostname)[:255],
        "pid": os.getpid(),
        "host": socket.gethostname()[:255],
        "pool": pool[:16],
        "concurrency": int(worker.concurrency or 1),
        "queues": sorted(str(name) for name in queues),
        "version": _version(),
        "started_at": utcnow(),
    }


def _version() -> str:
    try:
        return metadata.version("herald")
    except metadata.PackageNotFoundError:
        return "unknown"


class HeartbeatStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """A worker bootstep: the heartbeat from start to stop, and the warm shutdown's grace.

    Started once the pool is up, before the worker consumes anything, so that the
    row exists before this worker claims a step. Stopped (SIGTERM: warm shutdown)
    after Celery stops consuming and before the pool stops: it lets running steps
    finish for ``shutdown_grace_seconds``, hands back the rest, then marks the
    worker stopped. A cold shutdown (SIGQUIT) hands back at once.
    """

    requires = ("celery.worker.components:Pool",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.heartbeat: Heartbeat | None = None
        self.rt: Runtime | None = None

    def start(self, parent: Any) -> None:
        """Write this worker's row and start beating."""
        from workers import runtime

        config = runtime.configuration()
        if config is None or config.worker_id is None:
            return
        settings = config.settings
        # an in-process broker is only reachable through the worker's own app
        shared = config.celery if settings.broker_url.startswith("memory") else None
        self.rt = sweep_runtime(settings, config.project, shared)
        self.heartbeat = Heartbeat(
            self.rt.engine,
            describe(parent, config.worker_id),
            interval=settings.heartbeat_interval_seconds,
            dead_after=settings.worker_dead_after_seconds,
        )
        self.heartbeat.start()

    def stop(self, parent: Any) -> None:
        """Warm shutdown: the grace, the hand-back, then the row marked stopped."""
        if self.rt is not None:
            self._shutdown(parent, self.rt.settings.shutdown_grace_seconds)

    def terminate(self, parent: Any) -> None:
        """Cold shutdown: hand back at once, then mark the row stopped."""
        self._shutdown(parent, 0.0)

    def _shutdown(self, parent: Any, grace: float) -> None:
        heartbeat, rt = self.heartbeat, self.rt
        self.heartbeat = self.rt = None
        if heartbeat is None or rt is None:
            return
        heartbeat.stopping()
        handed = shutdown.drain(rt, heartbeat.worker_id, grace)
        if handed != []:
            shutdown.stop_attempts(parent.pool, handed)
        heartbeat.stop()
        rt.close()
