"""Real workers: `herald worker` subprocesses on the real database and Redis.

Each test proves one guarantee end to end and keeps its timings short (the
worker fixture sets a 0.5 s sweep interval and second-scale deadlines).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.workers.conftest import (
    WorkerProcess,
    accept,
    all_finished,
    wait_for,
)
from workers.celery_app import DISPATCH_TASK, make_celery
from workflows.model import Project
from workflows.settings import Settings
from workflows.store import db
from workflows.store.models import Execution, Step

pytestmark = pytest.mark.integration


@pytest.fixture
def sessions(pg_url: str, clean_db: Any) -> sessionmaker[Session]:
    return db.make_sessionmaker(clean_db)


def _steps(sessions: sessionmaker[Session], execution_id: str) -> list[Step]:
    with sessions() as session:
        return list(
            session.scalars(
                select(Step).where(Step.execution_id == execution_id).order_by(Step.seq)
            )
        )


def _execution(sessions: sessionmaker[Session], execution_id: str) -> Execution:
    with sessions() as session:
        found = session.get(Execution, execution_id)
        assert found is not None
        return found


def _publisher(worker_env: dict[str, str]) -> Any:
    settings = Settings(
        broker_url=worker_env["HERALD_BROKER_URL"],
        queue_prefix=worker_env["HERALD_QUEUE_PREFIX"],
        database_url=worker_env["HERALD_DATABASE_URL"],
    )
    return make_celery(settings)


def test_events_run_to_completion_through_success_error_retry_and_timeout_paths(
    start_worker: Callable[..., WorkerProcess],
    worker_env: dict[str, str],
    sessions: sessionmaker[Session],
    engine_project: Project,
    tmp_path: Path,
) -> None:
    marker = tmp_path / "slow-finished"
    counter = tmp_path / "flaky-calls"
    events = {
        "engine.chain": {"value": 5},
        "engine.fail": {"message": "card declined"},
        "engine.flaky": {"counter": str(counter)},
        "engine.slow": {"seconds": 2.5, "marker": str(marker)},
    }
    routed = {
        name: accept(sessions, engine_project, name, payload) for name, payload in events.items()
    }
    start_worker(concurrency=2)
    celery = _publisher(worker_env)
    for event_id, _ in routed.values():
        celery.send_task(DISPATCH_TASK, args=[event_id])
    ids = [i for _, execution_ids in routed.values() for i in execution_ids]

    wait_for(lambda: all_finished(sessions, ids), timeout=30, what="every execution to finish")

    chain, executable = routed["engine.chain"][1]
    assert _execution(sessions, chain).output == {"result": 5}
    assert _execution(sessions, executable).status == "succeeded"
    (failing,) = routed["engine.fail"][1]
    boom, handle = _steps(sessions, failing)
    assert boom.status == "failed" and "card declined" in handle.input["reason"]
    assert _execution(sessions, failing).status == "succeeded"
    (flaky,) = routed["engine.flaky"][1]
    (step,) = _steps(sessions, flaky)
    assert (step.status, step.attempts, counter.read_text()) == ("succeeded", 3, "3")
    (slow,) = routed["engine.slow"][1]
    (step,) = _steps(sessions, slow)
    assert (step.status, step.error["type"]) == ("timed_out", "timeout")
    assert _execution(sessions, slow).status == "failed"
    # the tool was stopped: it would have written the marker 2.5 s after it started
    started = step.started_at
    assert started is not None
    wait_for(lambda: _elapsed_since(started) > 3.0, timeout=5, what="the tool's would-be end")
    assert not marker.exists()


def _elapsed_since(moment: Any) -> float:
    from workflows.store.models import utcnow

    return (utcnow() - moment).total_seconds()
