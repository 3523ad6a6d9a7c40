"""Workers that die whole, stop, or outlast Redis's patience: real ``herald worker`` processes.

Each test has a redis-server of its own (a killed worker leaves its message
unacknowledged there, and one test lowers the visibility timeout: neither may
touch the shared Redis). Workers beat every second and are presumed dead
after 5 s of silence (``worker_env``); the step of ``engine.stall`` sleeps on
its first run only, with a timeout of 300 s, so its lease (340 s) never helps.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.support import RedisServer
from tests.workers.conftest import WorkerProcess, accept, all_finished, wait_for
from workers.celery_app import DISPATCH_TASK, make_celery
from workflows.model import Project
from workflows.settings import Settings
from workflows.store import db
from workflows.store.models import Execution, Step, Worker, utcnow

pytestmark = pytest.mark.integration

#: what the issue allows between the kill and the end of the execution
RECOVERY_BUDGET = 45.0


@pytest.fixture
def sessions(clean_db: Any) -> sessionmaker[Session]:
    return db.make_sessionmaker(clean_db)


def _stall(
    sessions: sessionmaker[Session],
    project: Project,
    broker: RedisServer,
    queue_prefix: str,
    calls: Path,
    seconds: float,
) -> str:
    """Accept and dispatch an ``engine.stall`` event; its execution's id."""
    event_id, (execution_id,) = accept(
        sessions, project, "engine.stall", {"seconds": seconds, "calls": str(calls)}
    )
    celery = make_celery(Settings(broker_url=broker.url, queue_prefix=queue_prefix))
    celery.send_task(DISPATCH_TASK, args=[event_id])
    return execution_id


def _runs(calls: Path) -> list[str]:
    """The pids of the tool's runs so far."""
    return calls.read_text().split() if calls.exists() else []


def _steps(sessions: sessionmaker[Session], execution_id: str) -> list[Step]:
    with sessions() as session:
        return list(
            session.scalars(
                select(Step).where(Step.execution_id == execution_id).order_by(Step.seq)
            )
        )


def _worker(sessions: sessionmaker[Session], process: WorkerProcess) -> Worker:
    with sessions() as session:
        found = session.scalars(select(Worker).where(Worker.hostname == process.hostname)).one()
        return found


def _executions_of(sessions: sessionmaker[Session], execution_id: str) -> int:
    with sessions() as session:
        event_id = session.scalar(select(Execution.event_id).where(Execution.id == execution_id))
        return int(
            session.scalar(
                select(func.count()).select_from(Execution).where(Execution.event_id == event_id)
            )
            or 0
        )


def _assert_recovered_once(
    sessions: sessionmaker[Session], execution_id: str, calls: Path, killed: WorkerProcess
) -> Step:
    """The stalled step ran twice (killed, then again), was recorded once, and so was the rest."""
    stall, after = _steps(sessions, execution_id)
    assert (stall.task_id, stall.status, stall.attempts, stall.lost) == ("stall", "succeeded", 2, 1)
    assert (after.task_id, after.status, after.attempts, after.lost) == ("after", "succeeded", 1, 0)
    assert after.input == {"first": False}  # the next step saw the second run's output
    assert len(_runs(calls)) == 2
    assert _executions_of(sessions, execution_id) == 1
    assert stall.worker is not None and not stall.worker.startswith(killed.hostname)
    with sessions() as session:
        assert session.get(Execution, execution_id).status == "succeeded"  # type: ignore[union-attr]
    return stall


def test_a_worker_killed_whole_mid_step_is_replaced_and_the_step_runs_again_within_45s(
    private_redis: RedisServer,
    start_worker: Callable[..., WorkerProcess],
    sessions: sessionmaker[Session],
    engine_project: Project,
    queue_prefix: str,
    tmp_path: Path,
) -> None:
    env = {"HERALD_BROKER_URL": private_redis.url}
    victim = start_worker(env=env)
    calls = tmp_path / "calls"
    execution_id = _stall(sessions, engine_project, private_redis, queue_prefix, calls, 120)
    wait_for(lambda: _runs(calls), timeout=20, what="the step to start")
    running = _steps(sessions, execution_id)[0]
    assert running.status == "running"
    assert running.worker_id == _worker(sessions, victim).id  # the step names its worker
    started = running.started_at
    assert started is not None
    # the heartbeat keeps beating while the 120 s tool runs (in a pool process)
    wait_for(
        lambda: (_worker(sessions, victim).last_seen_at - started).total_seconds() > 2.5,
        timeout=10,
        what="heartbeats during the step",
    )

    killed_at = time.monotonic()
    victim.kill_group()
    start_worker(env=env)  # a fresh worker, as an orchestrator would start
    wait_for(
        lambda: all_finished(sessions, [execution_id]),
        timeout=RECOVERY_BUDGET,
        what="the execution after the kill",
    )
    recovered = time.monotonic() - killed_at

    _assert_recovered_once(sessions, execution_id, calls, victim)
    dead = _worker(sessions, victim)
    assert dead.stopped_at is None  # it never said goodbye: it was found silent
    print(f"\nrecovery after SIGKILL of the worker's process group: {recovered:.1f} s")
    assert recovered < RECOVERY_BUDGET


def test_a_worker_that_never_comes_back_leaves_its_step_to_the_running_ones_exactly_once(
    private_redis: RedisServer,
    start_worker: Callable[..., WorkerProcess],
    sessions: sessionmaker[Session],
    engine_project: Project,
    queue_prefix: str,
    tmp_path: Path,
) -> None:
    env = {"HERALD_BROKER_URL": private_redis.url}
    victim = start_worker(env=env)
    calls = tmp_path / "calls"
    execution_id = _stall(sessions, engine_project, private_redis, queue_prefix, calls, 120)
    wait_for(lambda: _runs(calls), timeout=20, what="the step to start")
    # two workers already running, both sweeping every 0.5 s: the step is requeued once
    survivors = [start_worker(env=env), start_worker(env=env)]

    killed_at = time.monotonic()
    victim.kill_group()
    wait_for(
        lambda: all_finished(sessions, [execution_id]),
        timeout=RECOVERY_BUDGET,
        what="the execution after the kill",
    )
    recovered = time.monotonic() - killed_at

    stall = _assert_recovered_once(sessions, execution_id, calls, victim)
    assert stall.publish_count == 2  # dispatch's publish, then the one requeue
    assert stall.worker is not None
    assert any(stall.worker.startswith(s.hostname) for s in survivors)
    print(f"\nrecovery by an already-running worker: {recovered:.1f} s")
    assert recovered < RECOVERY_BUDGET


def test_sigterm_lets_short_steps_finish_and_hands_the_long_one_back_at_the_grace(
    private_redis: RedisServer,
    start_worker: Callable[..., WorkerProcess],
    sessions: sessionmaker[Session],
    engine_project: Project,
    queue_prefix: str,
    tmp_path: Path,
) -> None:
    grace = 3.0
    env = {"HERALD_BROKER_URL": private_redis.url}
    leaving = start_worker(concurrency=2, env={**env, "HERALD_SHUTDOWN_GRACE": str(grace)})
    short_calls, long_calls = tmp_path / "short", tmp_path / "long"
    short = _stall(sessions, engine_project, private_redis, queue_prefix, short_calls, 1.5)
    long = _stall(sessions, engine_project, private_redis, queue_prefix, long_calls, 120)
    wait_for(
        lambda: _runs(short_calls) and _runs(long_calls), timeout=20, what="both steps to start"
    )
    staying = start_worker(env=env)

    told_at = time.monotonic()
    leaving.proc.send_signal(signal.SIGTERM)
    leaving.proc.wait(grace + 20)
    exited = time.monotonic() - told_at
    wait_for(lambda: all_finished(sessions, [short, long]), timeout=20, what="both executions")
    finished = time.monotonic() - told_at

    # the short step finished on the leaving worker, within the grace
    quick, _ = _steps(sessions, short)
    assert (quick.status, quick.attempts, quick.lost) == ("succeeded", 1, 0)
    assert quick.worker is not None and quick.worker.startswith(leaving.hostname)
    # the long one was handed back at the grace (no lease, no loss) and ran on the other
    handed, after = _steps(sessions, long)
    assert (handed.status, handed.attempts, handed.lost) == ("succeeded", 2, 0)
    assert handed.worker is not None and handed.worker.startswith(staying.hostname)
    assert after.status == "succeeded" and len(_runs(long_calls)) == 2
    assert f'"steps":["{handed.id}"]' in leaving.output()  # worker.handed_back
    row = _worker(sessions, leaving)
    assert (row.status, row.stopped_at is not None) == ("stopped", True)
    assert leaving.proc.returncode == 0
    print(f"\nSIGTERM: worker exited after {exited:.1f} s, the handed-back step's execution")
    print(f"finished {finished:.1f} s after the signal")
    assert grace <= exited < grace + 15


def test_a_step_longer_than_the_configured_visibility_timeout_runs_once(
    private_redis: RedisServer,
    start_worker: Callable[..., WorkerProcess],
    sessions: sessionmaker[Session],
    engine_project: Project,
    queue_prefix: str,
    tmp_path: Path,
) -> None:
    """``HERALD_VISIBILITY_TIMEOUT=2``: with that value, Redis would hand the step's message to
    the next worker that starts while the 12 s step still runs, and the step would run twice.
    The worker raises it to what the project's longest step needs (300 s timeout: 740 s)."""
    floor = 2.0
    env = {"HERALD_BROKER_URL": private_redis.url, "HERALD_VISIBILITY_TIMEOUT": str(floor)}
    first = start_worker(env=env)
    assert '"visibility_timeout":740.0' in first.output()
    calls = tmp_path / "calls"
    execution_id = _stall(sessions, engine_project, private_redis, queue_prefix, calls, 12)
    wait_for(lambda: _runs(calls), timeout=20, what="the step to start")
    started = _steps(sessions, execution_id)[0].started_at
    assert started is not None
    wait_for(
        lambda: (utcnow() - started).total_seconds() > floor + 1,
        timeout=10,
        what="the message to outlive the configured visibility timeout",
    )

    # a worker starting restores every message unacknowledged for longer than its timeout
    start_worker(env=env)
    assert _steps(sessions, execution_id)[0].status == "running"  # it started mid-step
    redis = private_redis.client()
    assert redis.hlen("unacked") == 1  # still the first worker's, not handed out again
    assert redis.llen(f"{queue_prefix}.steps") == 0

    wait_for(lambda: all_finished(sessions, [execution_id]), timeout=30, what="the execution")
    stall, after = _steps(sessions, execution_id)
    assert (stall.status, stall.attempts, stall.lost) == ("succeeded", 1, 0)
    assert len(_runs(calls)) == 1 and after.status == "succeeded"
