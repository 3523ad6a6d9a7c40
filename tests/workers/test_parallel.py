"""Parallel steps: each strategy, max_workers, cancel, duplicates; then real workers."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.workers.conftest import (
    RecordingCelery,
    WorkerStarter,
    accept,
    all_finished,
    drain,
    snapshot,
    wait_for,
)
from tests.workers.test_flow import _rows, _send
from workers import tasks
from workers.runtime import Runtime
from workflows.model import Project
from workflows.store.models import Step

NONE_FAIL = {"a": False, "b": False, "c": False}


def _fail(*names: str) -> dict[str, Any]:
    return {"fail": {**NONE_FAIL, **dict.fromkeys(names, True)}}


def _start(rt: Runtime, strategy: str, payload: dict[str, Any]) -> str:
    event_id, (execution_id,) = accept(rt.sessions, rt.project, f"flow.par.{strategy}", payload)
    tasks.dispatch(rt, event_id)
    return execution_id


def _sent(rt: Runtime) -> list[Any]:
    celery: RecordingCelery = rt.celery  # type: ignore[assignment]
    return celery.sent


def _by_task(steps: list[Step]) -> dict[str, Step]:
    return {s.task_id: s for s in steps}


def test_wait_all_joins_every_child_output_by_id(frt: Runtime) -> None:
    execution_id = _start(frt, "wait-all", _fail())
    drain(frt)

    execution, steps = _rows(frt.sessions, execution_id)
    found = _by_task(steps)
    fan = found["fan"]
    assert (fan.status, fan.attempts) == ("succeeded", 1)
    assert fan.input == {"strategy": "wait_all", "max_workers": 2, "tasks": ["a", "b", "c"]}
    assert set(fan.output) == {"a", "b", "c"}
    for child in "abc":
        row = found[f"fan.{child}"]
        assert (row.parent_id, row.status, row.attempts) == (fan.id, "succeeded", 1)
        assert fan.output[child] == row.output and row.output["child"] == child
        assert row.output["key"] == f"{execution_id}:fan.{child}:1"  # its own idempotency key
    assert found["after"].input == {"joined": fan.output}
    assert [s.task_id for s in steps if s.parent_id is None] == ["fan", "after"]
    assert execution.status == "succeeded"


def test_max_workers_keeps_at_most_that_many_children_started(frt: Runtime) -> None:
    execution_id = _start(frt, "wait-all", _fail())
    tasks.run_step(frt, _sent(frt).pop(0).args[0], worker="w")  # the parallel step

    _, steps = _rows(frt.sessions, execution_id)
    assert [(s.task_id, s.status) for s in steps] == [
        ("fan", "waiting"),
        ("fan.a", "queued"),
        ("fan.b", "queued"),
    ]
    assert len(_sent(frt)) == 2
    tasks.run_step(frt, _sent(frt).pop(0).args[0], worker="w")  # a finishes: c may start
    _, steps = _rows(frt.sessions, execution_id)
    assert [s.task_id for s in steps] == ["fan", "fan.a", "fan.b", "fan.c"]
    drain(frt)
    assert _rows(frt.sessions, execution_id)[0].status == "succeeded"


def test_wait_all_with_a_failure_waits_for_every_child_then_fails(frt: Runtime) -> None:
    execution_id = _start(frt, "wait-all", _fail("b"))
    drain(frt)

    execution, steps = _rows(frt.sessions, execution_id)
    found = _by_task(steps)
    assert found["fan.c"].status == "succeeded"  # it ran: wait_all waits for all
    fan = found["fan"]
    assert (fan.status, fan.error["type"]) == ("failed", "parallel_failed")
    assert fan.error["message"] == "parallel 'fan' (wait_all): 1 of 3 task(s) failed: b"
    assert fan.error["failed"]["b"]["message"].endswith("fan.b was told to fail")
    assert found["handle"].input["error"] == fan.error and execution.status == "succeeded"


def test_fail_fast_fails_at_the_first_failure_and_cancels_the_rest(frt: Runtime) -> None:
    execution_id = _start(frt, "fail-fast", _fail("a"))
    drain(frt)

    _, steps = _rows(frt.sessions, execution_id)
    found = _by_task(steps)
    assert found["fan"].status == "failed"
    assert found["fan"].error["failed"].keys() == {"a"}
    for child in ("fan.b", "fan.c"):  # queued when a failed: cancelled, never run
        assert (found[child].status, found[child].attempts) == ("cancelled", 0)
    assert "handle" in found and "after" not in found


def test_best_effort_succeeds_with_null_for_failed_children(frt: Runtime) -> None:
    execution_id = _start(frt, "best-effort", _fail("b"))
    drain(frt)

    _, steps = _rows(frt.sessions, execution_id)
    found = _by_task(steps)
    fan = found["fan"]
    assert fan.status == "succeeded" and fan.error is None
    assert fan.output["b"] is None and fan.output["a"]["child"] == "a"
    assert found["fan.b"].status == "failed" and "after" in found


def test_race_takes_the_first_success_and_cancels_the_rest(frt: Runtime) -> None:
    execution_id = _start(frt, "race", _fail("a"))
    drain(frt)

    _, steps = _rows(frt.sessions, execution_id)
    found = _by_task(steps)
    fan = found["fan"]
    assert fan.status == "succeeded"
    assert fan.output == {"b": found["fan.b"].output}
    assert found["fan.a"].status == "failed" and found["fan.c"].status == "cancelled"


def test_race_fails_when_every_child_fails(frt: Runtime) -> None:
    execution_id = _start(frt, "race", _fail("a", "b", "c"))
    drain(frt)

    _, steps = _rows(frt.sessions, execution_id)
    fan = _by_task(steps)["fan"]
    assert fan.status == "failed" and set(fan.error["failed"]) == {"a", "b", "c"}


def test_a_duplicated_message_of_each_child_leaves_the_rows_of_one_delivery(frt: Runtime) -> None:
    once_id = _start(frt, "wait-all", _fail())
    drain(frt)
    once = snapshot(frt.sessions, [once_id])["steps"]

    twice_id = _start(frt, "wait-all", _fail())
    delivered: set[str] = set()
    while _sent(frt):
        message = _sent(frt).pop(0)
        if message.args[0] not in delivered:  # every message (parent, each child) twice
            delivered.add(message.args[0])
            _sent(frt).append(message)
        tasks.run_step(frt, message.args[0], worker="w", redelivered=True)
    twice = snapshot(frt.sessions, [twice_id])["steps"]

    def shape(rows: list[Any]) -> list[Any]:  # (seq, task, visit, status, attempts)
        return sorted(row[1:6] for row in rows)

    assert shape(twice) == shape(once)
    assert len(delivered) == 5  # the parallel step, its three children, the step after


def test_cancelling_the_execution_cancels_the_children(frt: Runtime) -> None:
    from workflows.engine import control
    from workflows.store.models import utcnow

    execution_id = _start(frt, "wait-all", _fail())
    tasks.run_step(frt, _sent(frt).pop(0).args[0], worker="w")
    with frt.sessions.begin() as session:
        control.cancel(session, execution_id, now=utcnow())
    drain(frt)  # the children's messages arrive after the cancel

    execution, steps = _rows(frt.sessions, execution_id)
    assert execution.status == "cancelled"
    assert [(s.task_id, s.status, s.attempts) for s in steps] == [
        ("fan", "cancelled", 1),
        ("fan.a", "cancelled", 0),
        ("fan.b", "cancelled", 0),
    ]


def test_a_retry_resumes_the_parallel_step_not_a_child(frt: Runtime) -> None:
    from workflows.store.executions import last_failed_step

    execution_id = _start(frt, "race", _fail("a", "b", "c"))
    drain(frt)

    with frt.sessions() as session:
        failed = last_failed_step(session, execution_id)
    assert failed is not None and failed.task_id == "fan"  # not fan.c, the last child to fail


# -- real workers -------------------------------------------------------------------------


@pytest.mark.integration
def test_every_strategy_on_real_workers_joins_once(
    flow_worker: WorkerStarter,
    worker_env: dict[str, str],
    flow_sessions: sessionmaker[Session],
    flow_project: Project,
) -> None:
    flow_worker(concurrency=2)
    flow_worker(concurrency=2)
    cases = {
        "wait-all": _fail(),
        "fail-fast": _fail("b"),
        "best-effort": _fail("c"),
        "race": _fail("a"),
    }
    ids: dict[str, str] = {}
    for strategy, payload in cases.items():
        event_id, (ids[strategy],) = accept(
            flow_sessions, flow_project, f"flow.par.{strategy}", payload
        )
        _send(worker_env, event_id)

    wait_for(
        lambda: all_finished(flow_sessions, list(ids.values())), what="the parallel executions"
    )

    outcome = {}
    for strategy, execution_id in ids.items():
        _, steps = _rows(flow_sessions, execution_id)
        top = [(s.task_id, s.status) for s in steps if s.parent_id is None]
        outcome[strategy] = top
        fan = steps[0]
        children = [s for s in steps if s.parent_id == fan.id]
        assert {s.task_id for s in children} <= {"fan.a", "fan.b", "fan.c"}
        assert len(children) == len({s.task_id for s in children})  # each child once
    assert outcome == {
        "wait-all": [("fan", "succeeded"), ("after", "succeeded")],
        "fail-fast": [("fan", "failed"), ("handle", "succeeded")],
        "best-effort": [("fan", "succeeded"), ("after", "succeeded")],
        "race": [("fan", "succeeded"), ("after", "succeeded")],
    }
    _, steps = _rows(flow_sessions, ids["wait-all"])
    workers = {s.worker for s in steps if s.parent_id is not None}
    assert all(w and w.startswith("test-") for w in workers)


@pytest.mark.integration
def test_children_finishing_at_once_on_two_workers_advance_the_parent_once(
    flow_worker: WorkerStarter,
    worker_env: dict[str, str],
    flow_sessions: sessionmaker[Session],
    flow_project: Project,
) -> None:
    flow_worker(concurrency=2)
    flow_worker(concurrency=2)
    accepted = [
        accept(flow_sessions, flow_project, "flow.par.best-effort", _fail()) for _ in range(8)
    ]
    ids = [execution_ids[0] for _, execution_ids in accepted]
    for event_id, _ in accepted:
        _send(worker_env, event_id)

    wait_for(lambda: all_finished(flow_sessions, ids), timeout=40, what="the executions")

    with flow_sessions() as session:
        rows = session.scalars(select(Step).where(Step.execution_id.in_(ids))).all()
    for execution_id in ids:
        mine = [s for s in rows if s.execution_id == execution_id]
        assert sorted(s.task_id for s in mine) == ["after", "fan", "fan.a", "fan.b", "fan.c"]
        assert {s.status for s in mine} == {"succeeded"}
        assert all(s.attempts == 1 for s in mine)


@pytest.mark.integration
def test_a_worker_killed_during_a_parallel_step_leaves_the_join_to_happen_once(
    flow_worker: WorkerStarter,
    worker_env: dict[str, str],
    flow_sessions: sessionmaker[Session],
    flow_project: Project,
    tmp_path: Path,
) -> None:
    pidfile = tmp_path / "crashy.pid"
    event_id, (execution_id,) = accept(
        flow_sessions, flow_project, "flow.par.crash", {"pidfile": str(pidfile)}
    )
    worker = flow_worker(concurrency=2)
    _send(worker_env, event_id)
    wait_for(lambda: pidfile.exists() and pidfile.read_text(), what="the crashy child to start")
    child = int(pidfile.read_text())
    assert child != worker.proc.pid

    os.kill(child, signal.SIGKILL)

    wait_for(lambda: all_finished(flow_sessions, [execution_id]), timeout=30, what="the execution")
    execution, steps = _rows(flow_sessions, execution_id)
    found = _by_task(steps)
    assert execution.status == "succeeded"
    crashy = found["fan.crashy"]
    assert (crashy.status, crashy.attempts, crashy.lost) == ("succeeded", 2, 1)
    assert found["fan.steady"].attempts == 1
    assert sorted(found) == ["after", "fan", "fan.crashy", "fan.steady"]  # one join, one after
    assert found["after"].input["joined"] == found["fan"].output


@pytest.mark.integration
def test_duplicated_messages_of_each_child_on_real_workers_leave_one_delivery_s_rows(
    flow_worker: WorkerStarter,
    worker_env: dict[str, str],
    flow_sessions: sessionmaker[Session],
    flow_project: Project,
) -> None:
    import threading

    from workers.celery_app import make_celery, publish_step
    from workflows.settings import Settings

    workers = [flow_worker(concurrency=2), flow_worker(concurrency=2)]
    celery = make_celery(
        Settings(
            broker_url=worker_env["HERALD_BROKER_URL"],
            queue_prefix=worker_env["HERALD_QUEUE_PREFIX"],
            database_url=worker_env["HERALD_DATABASE_URL"],
        )
    )
    accepted = [accept(flow_sessions, flow_project, "flow.par.wait-all", _fail()) for _ in range(3)]
    ids = [execution_ids[0] for _, execution_ids in accepted]
    for event_id, _ in accepted:
        _send(worker_env, event_id)
    duplicated: set[str] = set()

    def duplicate_children() -> bool:
        with flow_sessions() as session:
            children = session.scalars(
                select(Step.id).where(Step.execution_id.in_(ids), Step.parent_id.is_not(None))
            ).all()
        for step_id in children:
            if step_id not in duplicated:
                duplicated.add(step_id)
                sends = [
                    threading.Thread(
                        target=lambda s=step_id: publish_step(celery, s, uses="tool", timeout=5)
                    )
                    for _ in range(2)
                ]
                for thread in sends:
                    thread.start()
                for thread in sends:
                    thread.join()
        return all_finished(flow_sessions, ids) and len(duplicated) == 9

    wait_for(duplicate_children, timeout=40, what="the executions and their children")

    def dropped() -> int:  # of each child's three deliveries, two are dropped
        lines = [line for w in workers for line in w.output().splitlines()]
        return sum(
            '"step.dropped"' in line and any(s in line for s in duplicated) for line in lines
        )

    wait_for(lambda: dropped() == 18, what="the duplicated deliveries to be dropped")
    for execution_id in ids:
        _, steps = _rows(flow_sessions, execution_id)
        assert sorted((s.task_id, s.status, s.attempts) for s in steps) == [
            ("after", "succeeded", 1),
            ("fan", "succeeded", 1),
            ("fan.a", "succeeded", 1),
            ("fan.b", "succeeded", 1),
            ("fan.c", "succeeded", 1),
        ]
