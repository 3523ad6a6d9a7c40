"""Warm shutdown: running steps get ``shutdown_grace_seconds`` to finish, then are handed back.

When a worker is told to stop (SIGTERM), Celery stops consuming and
:class:`~workers.heartbeat.HeartbeatStep` calls :func:`drain`: it watches the
database until no step claimed by this worker is running, at most for the
grace. Steps still running then are requeued at once
(:func:`workflows.engine.recovery.hand_back`: no lease to wait out, ``lost``
not counted) and published, so another worker takes them now; :func:`stop_attempts`
then kills the pool processes still running them. A result such an attempt
would record later is fenced off: the step no longer runs that attempt.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from workers.celery_app import AGENT_STEP_TASK, STEP_TASK
from workers.logs import log_event
from workers.publish import publish
from workers.runtime import Runtime
from workflows.engine import recovery
from workflows.store import workers as fleet
from workflows.store.models import Step, utcnow

#: seconds between two looks at the database while running steps finish
POLL_SECONDS = 0.2
#: tries at handing back, for steps whose execution another transaction held
HAND_BACK_TRIES = 10


def drain(rt: Runtime, worker_id: str, grace: float) -> list[Step] | None:
    """Wait up to ``grace`` seconds for this worker's running steps; hand back the rest.

    Returns the steps handed back (``[]`` when all finished in time), or None
    when the database could not be reached or some steps could not be handed
    back (their execution stayed locked): the sweep requeues those once this
    worker is marked stopped, or its heartbeats are missed.
    """
    started = time.monotonic()
    pause = threading.Event()
    watch = _Watch(rt, worker_id)
    while True:
        running = watch.running()
        if running == 0:
            return []
        if time.monotonic() - started >= grace:
            break
        pause.wait(POLL_SECONDS)
    handed: list[Step] = []
    unsent = 0
    for _ in range(HAND_BACK_TRIES):
        try:
            with rt.sessions.begin() as session:
                more, messages = recovery.hand_back(session, rt.project, worker_id, now=utcnow())
        except SQLAlchemyError as exc:
            watch.unreachable(exc)
            return None
        handed += more
        unsent += len(publish(rt, messages))  # what is not sent, the sweep re-publishes
        running = watch.running()
        if running == 0:
            break
        # another transaction held a step's execution (hand_back skips it): try again
        pause.wait(POLL_SECONDS)
    log_event(
        "worker.handed_back",
        level=logging.WARNING,
        worker_id=worker_id,
        grace_seconds=grace,
        steps=[step.id for step in handed],
        unpublished=unsent,
        left=running,
    )
    return handed if running == 0 else None


class _Watch:
    """Counts this worker's running steps; says once that the database is unreachable."""

    def __init__(self, rt: Runtime, worker_id: str) -> None:
        self.rt = rt
        self.worker_id = worker_id
        self.warned = False

    def running(self) -> int | None:
        """How many steps this worker runs as the database has it; None if unreachable."""
        try:
            with self.rt.sessions() as session:
                found = fleet.running_steps(session, [self.worker_id])
        except SQLAlchemyError as exc:
            self.unreachable(exc)
            return None
        return len(found.get(self.worker_id, []))

    def unreachable(self, exc: SQLAlchemyError) -> None:
        """Log (once per shutdown) that the database did not answer."""
        if self.warned:
            return
        self.warned = True
        log_event(
            "worker.shutdown_database_unreachable",
            level=logging.WARNING,
            worker_id=self.worker_id,
            reason=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
        )


def stop_attempts(pool: Any, handed: list[Step] | None, requests: Any = None) -> int:
    """Kill the pool processes running the attempts of ``handed`` steps; how many.

    ``None`` (the database could not say which steps were handed back, or
    not all were) stops every step still running in this worker. Celery acknowledges each message
    it stops: the step's new run message is the one to follow. A pool that
    cannot stop a task (threads, solo) lets the tool run on; its result is
    fenced off when it ends.
    """
    if requests is None:
        from celery.worker import state

        requests = state.active_requests
    wanted = None if handed is None else {step.message_id for step in handed}
    stopped = 0
    for request in list(requests):
        if request.name not in (STEP_TASK, AGENT_STEP_TASK):
            continue
        if wanted is not None and request.id not in wanted:
            continue
        try:
            request.terminate(pool, signal="SIGKILL")
        except NotImplementedError:
            log_event(
                "worker.cannot_stop_step",
                level=logging.WARNING,
                reason="this pool cannot stop a running task; it runs to its end, "
                "and its result is discarded (the step was handed back)",
            )
            break
        stopped += 1
    return stopped
