"""The worker half of ``herald dev``: a Celery worker on a thread, on the in-process broker.

The broker is kombu's ``memory://`` transport, shared by every thread of the
process (the API publishes, this worker consumes). Because it starts empty and no
other process shares the dev database, :func:`recover` re-publishes everything
left unfinished by the previous run as soon as the process starts.
"""

from __future__ import annotations

import socket
import threading

from celery import Celery

from workers.celery_app import make_celery
from workflows.errors import HeraldError
from workflows.registry import Definitions
from workflows.settings import Settings

#: worker threads of the embedded worker
WORKER_THREADS = 4
#: seconds between two polls of the in-process broker's queues by the worker
POLL_SECONDS = 0.05


class WorkerDidNotStart(HeraldError):
    """The embedded worker was not consuming within its start timeout."""


class EmbeddedWorker:
    """A Celery worker (``WorkController``) on a thread of this process."""

    def __init__(self, celery: Celery, *, threads: int) -> None:
        queues = celery.herald_queues  # type: ignore[attr-defined]
        self._ready = threading.Event()
        self.controller = celery.WorkController(
            hostname=node_name(),
            pool_cls="threads",
            concurrency=threads,
            queues=list(queues.all),
            loglevel="WARNING",
            ready_callback=lambda *_: self._ready.set(),
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
        )
        self._thread = threading.Thread(
            target=self.controller.start, name="herald-worker", daemon=True
        )

    def start(self, timeout: float = 30.0) -> None:
        """Start consuming; raise :class:`WorkerDidNotStart` if the worker is not up in time."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise WorkerDidNotStart(f"the embedded worker did not start within {timeout:.0f} s")

    def stop(self, timeout: float = 30.0) -> None:
        """Warm shutdown: finish the steps in progress, then return."""
        if self._thread.is_alive():
            self.controller.stop(in_sighandler=False)
            self._thread.join(timeout)


def dev_celery(settings: Settings) -> Celery:
    """herald's Celery app on the in-process broker, without task events (no Flower here)."""
    celery = make_celery(settings)
    celery.conf.worker_send_task_events = False
    celery.conf.task_send_sent_event = False
    # The in-process transport is polled: a short interval keeps each step's latency low.
    celery.conf.broker_transport_options = {"polling_interval": POLL_SECONDS}
    return celery


def recover(settings: Settings, definitions: Definitions, celery: Celery) -> int:
    """Re-publish the unfinished work of the last run at once; how many items.

    The in-process broker starts empty and no other worker shares this database,
    so nothing accepted or queued before a restart can be on a broker, and a step
    still ``running`` belonged to the process that stopped: its lease is ended
    now rather than waited out. One recovery pass with zero deadlines then
    publishes it all (a lost step counts the loss, as in production).
    """
    from workers.sweep import sweep, sweep_runtime
    from workflows.engine.recovery import end_leases
    from workflows.store.models import utcnow

    eager = settings.with_(dispatch_deadline_seconds=0.0, step_deadline_seconds=0.0)
    rt = sweep_runtime(eager, definitions.project, celery)
    try:
        with rt.sessions.begin() as session:
            end_leases(session, now=utcnow())
        report = sweep(rt)
    finally:
        rt.close()
    return report.total


def node_name() -> str:
    """The Celery node name of the embedded worker."""
    return f"herald-dev@{socket.gethostname()}"
