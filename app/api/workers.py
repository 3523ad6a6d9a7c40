"""The worker fleet as the database sees it: ``GET /api/v1/workers``.

Each ``herald worker`` beats in the ``workers`` table; a worker is ``alive``
while it beats, ``stale`` once it has been silent for ``HERALD_WORKER_DEAD_AFTER``
seconds without stopping (presumed dead: the sweep requeues its steps), and
``stopped`` after a clean shutdown. Each comes with how many steps it is
running, and those of them whose executions the token may read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response

from app.api.common import authorize, choice_param, iso, ok, page, page_params
from app.auth import visibility
from app.state import state
from workflows.store import workers as fleet
from workflows.store.models import Step, Worker, utcnow
from workflows.store.workers import WorkerState

bp = Blueprint("workers", __name__)


@bp.get("/workers")
def list_workers() -> Response:
    """Workers newest first, each with its state and running steps; filter ``state``.

    Every worker is listed, with how many steps it runs; the steps themselves
    only for the executions the token may read (``executions:read`` rules).
    """
    token = authorize("workers:read")
    seen = visibility(token, "executions")
    limit, before_id = page_params()
    wanted = choice_param("state", [s.value for s in WorkerState])
    st = state()
    dead_after = st.settings.worker_dead_after_seconds
    now = utcnow()
    with st.sessions() as session:
        rows = fleet.list_workers(
            session,
            now=now,
            dead_after=dead_after,
            state=WorkerState(wanted) if wanted else None,
            before_id=before_id,
            limit=limit + 1,
        )
        kept, next_cursor = page(rows, limit, key=lambda w: w.id)
        ids = [w.id for w in kept]
        running = fleet.running_steps(session, ids, visible=seen.executions_clause())
        busy = fleet.running_counts(session, ids)
        counts = fleet.count_by_state(session, now=now, dead_after=dead_after)
    shown = [
        worker_json(w, running.get(w.id, []), busy.get(w.id, 0), now=now, dead_after=dead_after)
        for w in kept
    ]
    return ok(
        {
            "workers": shown,
            "counts": counts,
            "dead_after_seconds": dead_after,
            "next_cursor": next_cursor,
        }
    )


def worker_json(
    worker: Worker, running: list[Step], busy: int, *, now: datetime, dead_after: float
) -> dict[str, Any]:
    """A worker as the API shows it: ``busy`` steps running, ``running`` those shown."""
    return {
        "id": worker.id,
        "hostname": worker.hostname,
        "host": worker.host,
        "pid": worker.pid,
        "pool": worker.pool,
        "concurrency": worker.concurrency,
        "queues": worker.queues,
        "version": worker.version,
        "status": worker.status,
        "state": fleet.state_of(worker, now=now, dead_after=dead_after).value,
        "started_at": iso(worker.started_at),
        "last_seen_at": iso(worker.last_seen_at),
        "seconds_since_seen": round(max((now - worker.last_seen_at).total_seconds(), 0.0), 1),
        "stopped_at": iso(worker.stopped_at),
        "running_count": busy,
        "running": [
            {
                "step_id": step.id,
                "execution_id": step.execution_id,
                "task_id": step.task_id,
                "visit": step.visit,
                "attempt": step.attempts,
                "process": step.worker,
                "started_at": iso(step.started_at),
            }
            for step in running
        ],
    }
