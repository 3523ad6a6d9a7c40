"""Dead workers, in process: heartbeats, the sweep's requeue, hand-back, the redelivery fence.

The engine functions run in the test process on the real database (the ``rt``
fixture records what would be published); worker rows are written as the
heartbeat writes them, with times in the past where a test needs a dead worker.
The same guarantees with real ``herald worker`` processes: ``test_fleet_processes.py``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.workers.conftest import accept, drain, wait_for
from workers import shutdown, sweep, tasks
from workers.celery_app import STEP_TASK
from workers.heartbeat import Heartbeat
from workers.runtime import Runtime
from workflows.engine import recovery
from workflows.engine.claim import ClaimOutcome, claim
from workflows.engine.messages import MAX_COUNTDOWN, lease_seconds, visibility_timeout
from workflows.ids import new_id
from workflows.store import db
from workflows.store import workers as fleet
from workflows.store.models import Step, Worker, utcnow
from workflows.store.workers import WorkerStatus


def _register(rt: Runtime, *, seen: datetime, stopped: bool = False) -> str:
    worker_id = new_id("wkr")
    with rt.sessions.begin() as session:
        fleet.register(
            session,
            {
                "id": worker_id,
                "hostname": f"{worker_id}@test",
                "pid": 1,
                "host": "test",
                "pool": "prefork",
                "concurrency": 1,
                "queues": ["steps"],
                "version": "test",
                "status": (WorkerStatus.STOPPED if stopped else WorkerStatus.RUNNING).value,
                "started_at": seen,
                "last_seen_at": seen,
                "stopped_at": seen if stopped else None,
            },
        )
    return worker_id


def _running_step(rt: Runtime, worker_id: str, message_id: str = "message-1") -> Step:
    """A chain execution whose first step ``worker_id`` claimed (and still runs)."""
    event_id, _ = accept(rt.sessions, rt.project, "engine.chain", {"value": 1})
    tasks.dispatch(rt, event_id)
    rt.celery.sent.clear()  # type: ignore[attr-defined]
    with rt.sessions() as session:
        step_id = session.scalars(
            select(Step.id).where(Step.status == "queued", Step.task_id == "first")
        ).one()
    with rt.sessions.begin() as session:
        claimed = claim(
            session,
            rt.project,
            step_id,
            worker=f"{worker_id}@test/1",
            redelivered=False,
            redelivery_cap=rt.settings.redelivery_cap,
            now=utcnow(),
            worker_id=worker_id,
            message_id=message_id,
        )
    assert claimed.claim is not None
    return claimed.claim.step


def _step(rt: Runtime, step_id: str) -> Step:
    with rt.sessions() as session:
        found = session.get(Step, step_id)
        assert found is not None
        return found


def test_a_step_records_the_worker_and_the_message_that_claimed_it(rt: Runtime) -> None:
    worker_id = _register(rt, seen=utcnow())
    step = _step(rt, _running_step(rt, worker_id, message_id="m-42").id)
    assert (step.status, step.worker_id, step.message_id) == ("running", worker_id, "m-42")


def test_the_sweep_requeues_a_dead_workers_step_long_before_its_lease(rt: Runtime) -> None:
    dead_after = rt.settings.worker_dead_after_seconds
    now = utcnow()
    dead = _register(rt, seen=now - timedelta(seconds=dead_after + 1))
    alive = _register(rt, seen=now)
    orphan = _running_step(rt, dead)
    kept = _running_step(rt, alive)
    assert orphan.lease_until is not None and orphan.lease_until > now + timedelta(seconds=30)

    report = sweep.sweep(rt, now=now)

    assert (report.orphaned, report.lost) == ([orphan.id], [])
    assert [(m.name, m.args) for m in rt.celery.sent] == [(STEP_TASK, [orphan.id])]  # type: ignore[attr-defined]
    requeued = _step(rt, orphan.id)
    assert (requeued.status, requeued.attempts, requeued.lost) == ("queued", 1, 1)
    assert _step(rt, kept.id).status == "running"  # a live worker's step is left alone
    drain(rt)
    finished = _step(rt, orphan.id)
    assert (finished.status, finished.attempts, finished.lost) == ("succeeded", 2, 1)


def test_a_step_still_running_under_a_stopped_worker_is_requeued(rt: Runtime) -> None:
    stopped = _register(rt, seen=utcnow(), stopped=True)
    step = _running_step(rt, stopped)
    assert sweep.sweep(rt).orphaned == [step.id]


def test_a_step_of_a_dead_worker_lost_past_the_cap_fails_down_its_error_path(rt: Runtime) -> None:
    dead = _register(rt, seen=utcnow() - timedelta(minutes=5))
    step = _running_step(rt, dead)
    with rt.sessions.begin() as session:
        row = session.get(Step, step.id)
        assert row is not None
        row.lost = rt.settings.redelivery_cap

    report = sweep.sweep(rt)

    assert (report.orphaned, report.failed) == ([], [step.id])
    failed = _step(rt, step.id)
    assert (failed.status, failed.error["type"]) == ("failed", "worker_lost")


def test_a_sweep_that_may_not_judge_workers_leaves_their_steps_alone(rt: Runtime) -> None:
    dead = _register(rt, seen=utcnow() - timedelta(minutes=5))
    step = _running_step(rt, dead)
    assert sweep.sweep(rt, judge_workers=False).orphaned == []
    assert _step(rt, step.id).status == "running"


def test_two_sweeps_at_once_requeue_a_dead_workers_step_exactly_once(rt: Runtime) -> None:
    dead = _register(rt, seen=utcnow() - timedelta(minutes=5))
    steps = [_running_step(rt, dead, message_id=f"m-{n}") for n in range(5)]
    barrier = threading.Barrier(2)
    reports: list[recovery.SweepReport] = []

    def sweeper() -> None:
        # a runtime of its own per sweeper, as two worker processes have
        own = sweep.sweep_runtime(rt.settings, rt.project, rt.celery)
        try:
            barrier.wait(5)
            reports.append(sweep.sweep(own))
        finally:
            own.close()

    threads = [threading.Thread(target=sweeper) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    requeued = [step_id for report in reports for step_id in report.orphaned]
    assert sorted(requeued) == sorted(step.id for step in steps)  # each once, by one of them
    published = [m.args[0] for m in rt.celery.sent]  # type: ignore[attr-defined]
    assert sorted(published) == sorted(step.id for step in steps)
    assert {(_step(rt, s.id).lost, _step(rt, s.id).publish_count) for s in steps} == {(1, 2)}


def test_the_sweeper_judges_workers_only_once_it_has_reached_the_database_for_dead_after(
    rt: Runtime,
) -> None:
    settings = rt.settings.with_(heartbeat_interval_seconds=0.2, worker_dead_after_seconds=1.0)
    own = sweep.sweep_runtime(settings, rt.project, rt.celery)
    dead = _register(rt, seen=utcnow() - timedelta(minutes=5))
    step = _running_step(rt, dead)
    sweeper = sweep.Sweeper(own, interval=0.05)
    started = utcnow()
    sweeper.start()
    try:
        wait_for(lambda: _step(rt, step.id).status == "queued", timeout=10, what="the requeue")
    finally:
        sweeper.stop()
    # the first passes were not allowed to judge: a sweeper that has just reached the
    # database cannot tell a dead worker from a live one whose beats failed with its own
    assert _step(rt, step.id).queued_at - started >= timedelta(seconds=1.0)


def test_a_late_redelivery_of_a_dead_workers_message_does_not_reclaim_the_step_again(
    rt: Runtime,
) -> None:
    """The sweep requeued the step under a new message, and it runs again; the old message
    of the dead worker comes back from Redis (its visibility timeout): it must be dropped."""
    dead = _register(rt, seen=utcnow() - timedelta(minutes=5))
    alive = _register(rt, seen=utcnow())
    step = _running_step(rt, dead, message_id="old-message")
    sweep.sweep(rt)
    with rt.sessions.begin() as session:  # the new message's claim, on a live worker
        again = claim(
            session,
            rt.project,
            step.id,
            worker="alive/2",
            redelivered=False,
            redelivery_cap=rt.settings.redelivery_cap,
            now=utcnow(),
            worker_id=alive,
            message_id="new-message",
        )
    assert again.outcome is ClaimOutcome.CLAIMED

    def redeliver(message_id: str) -> ClaimOutcome:
        with rt.sessions.begin() as session:
            return claim(
                session,
                rt.project,
                step.id,
                worker="other/3",
                redelivered=True,
                redelivery_cap=rt.settings.redelivery_cap,
                now=utcnow(),
                worker_id=alive,
                message_id=message_id,
            ).outcome

    assert redeliver("old-message") is ClaimOutcome.DROPPED
    assert (_step(rt, step.id).attempts, _step(rt, step.id).lost) == (2, 1)
    # the message that claimed it, handed back because its pool process died: reclaimed
    assert redeliver("new-message") is ClaimOutcome.CLAIMED
    assert (_step(rt, step.id).attempts, _step(rt, step.id).lost) == (3, 2)


def test_hand_back_requeues_a_stopping_workers_steps_at_once_without_counting_a_loss(
    rt: Runtime,
) -> None:
    leaving = _register(rt, seen=utcnow())
    other = _register(rt, seen=utcnow())
    step = _running_step(rt, leaving, message_id="m-leaving")
    kept = _running_step(rt, other)

    with rt.sessions.begin() as session:
        handed, messages = recovery.hand_back(session, rt.project, leaving, now=utcnow())

    assert [(s.id, s.message_id) for s in handed] == [(step.id, "m-leaving")]
    assert [m.step_id for m in messages] == [step.id]
    back = _step(rt, step.id)
    assert (back.status, back.attempts, back.lost, back.lease_until) == ("queued", 1, 0, None)
    assert _step(rt, kept.id).status == "running"


def test_drain_waits_out_the_grace_then_hands_back_what_still_runs(rt: Runtime) -> None:
    leaving = _register(rt, seen=utcnow())
    idle = _register(rt, seen=utcnow())
    step = _running_step(rt, leaving, message_id="m-slow")
    started = time.monotonic()

    handed = shutdown.drain(rt, leaving, grace=0.5)

    assert time.monotonic() - started >= 0.5
    assert handed is not None and [s.id for s in handed] == [step.id]
    assert [m.args for m in rt.celery.sent] == [[step.id]]  # type: ignore[attr-defined]
    assert _step(rt, step.id).status == "queued"
    assert shutdown.drain(rt, idle, grace=30) == []  # nothing running: no wait at all


def test_drain_with_the_database_gone_says_so_once_and_hands_nothing_back(
    rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.support import free_port

    gone = rt.settings.with_(database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    cut_off = sweep.sweep_runtime(gone, rt.project, rt.celery)
    try:
        with caplog.at_level("WARNING"):
            assert shutdown.drain(cut_off, "wkr_gone", grace=0.6) is None
    finally:
        cut_off.close()
    said = [r for r in caplog.records if "shutdown_database_unreachable" in r.getMessage()]
    assert len(said) == 1  # not once per look at the database


@dataclass
class _Request:
    """What ``stop_attempts`` sees of a Celery request."""

    id: str
    name: str = STEP_TASK
    stopped: bool = False
    fails: bool = False

    def terminate(self, pool: object, signal: str) -> None:
        if self.fails:
            raise NotImplementedError("this pool cannot terminate a job")
        assert signal == "SIGKILL"
        self.stopped = True


def test_stop_attempts_kills_only_the_handed_back_steps_attempts() -> None:
    handed = [Step(id="stp_1", message_id="m-1")]
    slow, other, dispatch = _Request("m-1"), _Request("m-2"), _Request("m-3", name="x")

    assert shutdown.stop_attempts(None, handed, requests=[slow, other, dispatch]) == 1
    assert (slow.stopped, other.stopped, dispatch.stopped) == (True, False, False)
    # the database could not say: every step still running goes
    assert shutdown.stop_attempts(None, None, requests=[other, dispatch]) == 1
    assert other.stopped and not dispatch.stopped
    # a pool that cannot stop a task: logged, nothing raised
    assert shutdown.stop_attempts(None, None, requests=[_Request("m-4", fails=True)]) == 0


def test_the_heartbeat_writes_the_row_beats_re_registers_and_marks_it_stopped(
    rt: Runtime,
) -> None:
    row: dict[str, Any] = {
        "id": new_id("wkr"),
        "hostname": "beat@test",
        "pid": 7,
        "host": "test",
        "pool": "threads",
        "concurrency": 4,
        "queues": ["steps"],
        "version": "test",
        "started_at": utcnow(),
    }
    heartbeat = Heartbeat(
        db.make_unpooled_engine(rt.settings.database_url), row, interval=0.05, dead_after=1.0
    )

    def seen() -> Worker | None:
        with rt.sessions() as session:
            return session.get(Worker, row["id"])

    heartbeat.start()
    first = wait_for(seen, timeout=5, what="the worker's row")
    assert (first.status, first.stopped_at, first.concurrency) == ("running", None, 4)
    wait_for(
        lambda: (now := seen()) is not None and now.last_seen_at > first.last_seen_at,
        timeout=5,
        what="a second heartbeat",
    )
    with rt.sessions.begin() as session:  # pruned (or lost) meanwhile: written again
        fleet.prune(session, before=utcnow() + timedelta(days=1))
    wait_for(seen, timeout=5, what="the row written again")
    heartbeat.stopping()
    assert seen().status == "stopping"  # type: ignore[union-attr]
    heartbeat.stop()
    last = seen()
    assert last is not None and (last.status, last.stopped_at is not None) == ("stopped", True)


@pytest.mark.parametrize(
    ("timeouts", "floor", "expected"),
    [
        ([], 3600.0, 3600.0),  # no steps: the floor
        ([10.0, 300.0], 3600.0, 3600.0),  # short steps: the floor holds
        ([7200.0, 5.0], 3600.0, MAX_COUNTDOWN + 2 * (7200.0 + 40.0)),  # a two-hour step raises it
        ([20.0], 2.0, MAX_COUNTDOWN + 2 * (20.0 + 40.0)),
    ],
)
def test_the_visibility_timeout_outlasts_the_longest_step(
    timeouts: list[float], floor: float, expected: float, tmp_path: Path
) -> None:
    from workflows.loading.loader import load_project

    project = load_project(_project_with(tmp_path, timeouts))
    value = visibility_timeout(project, floor)
    assert value == expected
    for workflow in project.workflows.values():
        for task in workflow.tasks:
            # a countdown, a wait for a pool process behind the longest step, its own run
            assert value >= MAX_COUNTDOWN + 2 * lease_seconds(task)


def test_the_visibility_timeout_counts_the_children_of_a_parallel_task(tmp_path: Path) -> None:
    from workflows.loading.loader import load_project

    (tmp_path / "tool.py").write_text("def run(input):\n    return input\n")
    (tmp_path / "fan.yaml").write_text(
        "id: fan\ntriggers:\n  - type: signal\n    name: fan.go\n"
        "tools:\n  - id: t\n    execute: ./tool.py\n"
        "tasks:\n  - id: fan\n    type: parallel\n    tasks:\n"
        '      - id: quick\n        $use: tool(local::tools.#(id=="t"))\n        timeout: 5\n'
        '      - id: long\n        $use: tool(local::tools.#(id=="t"))\n        timeout: 7200\n'
    )
    project = load_project(tmp_path)
    assert visibility_timeout(project, 3600.0) == MAX_COUNTDOWN + 2 * (7200.0 + 40.0)


def _project_with(root: Path, timeouts: list[float]) -> Path:
    (root / "tool.py").write_text("def run(input):\n    return input\n")
    tasks_yaml = "".join(
        f'  - id: t{n}\n    type: basic\n    $use: tool(local::tools.#(id=="t"))\n'
        f"    timeout: {timeout}\n"
        for n, timeout in enumerate(timeouts)
    )
    body = (
        "id: vt\ntriggers:\n  - type: signal\n    name: vt.go\n"
        "tools:\n  - id: t\n    execute: ./tool.py\n"
        f"tasks:\n{tasks_yaml}"
    )
    if timeouts:
        (root / "vt.yaml").write_text(body)
    return root
