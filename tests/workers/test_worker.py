"""Real workers: `herald worker` subprocesses on the real database and Redis.

Each test proves one guarantee end to end and keeps its timings short (the
worker fixture sets a 0.5 s sweep interval and second-scale deadlines).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
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
from workers.celery_app import DISPATCH_TASK, make_celery, publish_step
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
    worker = start_worker(concurrency=2)
    celery = _publisher(worker_env)
    for event_id, _ in routed.values():
        celery.send_task(DISPATCH_TASK, args=[event_id])
    ids = [i for _, execution_ids in routed.values() for i in execution_ids]

    wait_for(lambda: all_finished(sessions, ids), timeout=30, what="every execution to finish")

    chain, executable = routed["engine.chain"][1]
    assert _execution(sessions, chain).output == {"result": 5}
    # the run messages named their workflow and task: each plain step was two statements
    finished = [line for line in worker.output().splitlines() if '"step.finished"' in line]
    assert len(finished) >= 3 and all('"path":"steppath"' in line for line in finished), finished
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


def test_every_message_delivered_twice_leaves_the_rows_of_one_delivery(
    start_worker: Callable[..., WorkerProcess],
    worker_env: dict[str, str],
    sessions: sessionmaker[Session],
    engine_project: Project,
) -> None:
    accepted = [accept(sessions, engine_project, "engine.dup", {}) for _ in range(3)]
    accepted.append(accept(sessions, engine_project, "engine.chain", {"value": 1}))
    ids = [i for _, execution_ids in accepted for i in execution_ids]
    start_worker(concurrency=2)
    start_worker(concurrency=2)
    celery = _publisher(worker_env)
    uses = {(wf.id, t.id): t for wf in engine_project.workflows.values() for t in wf.tasks}

    def twice(send: Callable[[], None]) -> None:
        threads = [threading.Thread(target=send) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    for event_id, _ in accepted:
        twice(lambda event_id=event_id: celery.send_task(DISPATCH_TASK, args=[event_id]))
    duplicated: set[str] = set()

    def duplicate_new_steps() -> bool:
        with sessions() as session:
            rows = session.execute(
                select(Step.id, Step.task_id, Execution.workflow_id)
                .join(Execution, Execution.id == Step.execution_id)
                .where(Step.execution_id.in_(ids))
            ).all()
        for step_id, task_id, workflow_id in rows:
            if step_id not in duplicated:
                duplicated.add(step_id)
                task = uses[(workflow_id, task_id)]
                twice(lambda s=step_id, t=task: publish_step(celery, s, uses=t.uses, timeout=5))
        return all_finished(sessions, ids)

    wait_for(duplicate_new_steps, timeout=40, what="every execution to finish")

    with sessions() as session:
        executions = session.scalars(select(Execution).where(Execution.id.in_(ids))).all()
        rows = session.scalars(
            select(Step).where(Step.execution_id.in_(ids)).order_by(Step.execution_id, Step.seq)
        ).all()
    assert {e.status for e in executions} == {"succeeded"}
    by_execution: dict[str, list[tuple[int, str, int, str, int]]] = {}
    for step in rows:
        by_execution.setdefault(step.execution_id, []).append(
            (step.seq, step.task_id, step.visit, step.status, step.attempts)
        )
    expected_dup = [
        (1, "a", 1, "succeeded", 1),
        (2, "b", 1, "succeeded", 1),
        (3, "c", 1, "succeeded", 1),
    ]
    for _, execution_ids in accepted[:3]:
        assert by_execution[execution_ids[0]] == expected_dup
    chain, executable = accepted[3][1]
    assert [s[:2] for s in by_execution[chain]] == [(1, "first"), (2, "second")]
    assert [s[:2] for s in by_execution[executable]] == [(1, "echo")]
    assert all(e.step_count == len(by_execution[e.id]) for e in executions)
    assert len(duplicated) == len(rows)  # every step really got its extra deliveries


def test_a_worker_killed_mid_step_leaves_the_step_to_run_again(
    start_worker: Callable[..., WorkerProcess],
    worker_env: dict[str, str],
    sessions: sessionmaker[Session],
    engine_project: Project,
    tmp_path: Path,
) -> None:
    pidfile = tmp_path / "crashy.pid"
    event_id, (execution_id,) = accept(
        sessions, engine_project, "engine.crash", {"pidfile": str(pidfile)}
    )
    worker = start_worker(concurrency=1)
    _publisher(worker_env).send_task(DISPATCH_TASK, args=[event_id])
    wait_for(lambda: pidfile.exists() and pidfile.read_text(), timeout=20, what="the step to start")
    child = int(pidfile.read_text())
    assert child != worker.proc.pid  # the pool process, not the worker's main process

    os.kill(child, signal.SIGKILL)

    # well within the step's lease (timeout 10 s + 40 s): the redelivered message reclaimed
    # the step at once (kombu marks a requeued message redelivered); the sweep did not wait
    wait_for(lambda: all_finished(sessions, [execution_id]), timeout=30, what="the execution")
    execution = _execution(sessions, execution_id)
    crashy, after = _steps(sessions, execution_id)
    assert execution.status == "succeeded"
    assert (crashy.status, crashy.attempts, crashy.lost) == ("succeeded", 2, 1)
    assert crashy.output["first"] is False and crashy.output["pid"] != child
    assert after.status == "succeeded"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_events_accepted_while_the_broker_is_down_run_once_it_is_back(
    start_worker: Callable[..., WorkerProcess],
    sessions: sessionmaker[Session],
    engine_project: Project,
    tmp_path: Path,
) -> None:
    port = _free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    accepted = [accept(sessions, engine_project, "engine.chain", {"value": n}) for n in range(3)]
    ids = [i for _, execution_ids in accepted for i in execution_ids]
    # what the API does with the broker down: the event is committed, the publish fails
    down = make_celery(Settings(broker_url=broker, queue_prefix="unused"))
    down.conf.broker_connection_timeout = 0.5
    with pytest.raises(Exception) as failed:
        down.send_task(DISPATCH_TASK, args=[accepted[0][0]], retry=False)
    assert "refused" in str(failed.value).lower() or "connect" in str(failed.value).lower()

    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        wait_for(lambda: _listening(port), timeout=10, what="the private redis-server")
        start_worker(concurrency=2, env={"HERALD_BROKER_URL": broker})
        wait_for(lambda: all_finished(sessions, ids), timeout=30, what="every execution")
    finally:
        server.terminate()
        server.wait(10)
    with sessions() as session:
        outputs = session.scalars(
            select(Execution.output).where(Execution.id.in_(ids), Execution.workflow_id == "chain")
        ).all()
    assert sorted(o["result"] for o in outputs) == [0, 1, 2]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def test_the_seed_order_created_event_runs_every_subscribed_workflow(
    start_worker: Callable[..., WorkerProcess],
    worker_env: dict[str, str],
    sessions: sessionmaker[Session],
    seed_dir: Path,
    test_token: Any,
) -> None:
    from app import create_app
    from tests.app.conftest import AUTH, ORDER_CREATED_WORKFLOWS, order

    app = create_app(
        Settings(
            project_dir=seed_dir,
            database_url=worker_env["HERALD_DATABASE_URL"],
            broker_url=worker_env["HERALD_BROKER_URL"],
            queue_prefix=worker_env["HERALD_QUEUE_PREFIX"],
            api_tokens=(test_token,),
        )
    )
    client = app.test_client()
    try:
        start_worker(concurrency=2, env={"HERALD_PROJECT_DIR": str(seed_dir)})
        answer = client.post(
            "/api/v1/events", json={"name": "order.created", "payload": order()}, headers=AUTH
        )
        assert answer.status_code == 202, answer.get_json()
        routes = answer.get_json()["data"]["workflows"]
        assert {r["workflow_id"] for r in routes} == ORDER_CREATED_WORKFLOWS
        ids = [r["execution_id"] for r in routes]

        wait_for(lambda: all_finished(sessions, ids), timeout=40, what="every seed workflow")

        for route in routes:
            shown = client.get(f"/api/v1/executions/{route['execution_id']}", headers=AUTH)
            body = shown.get_json()["data"]
            assert body["status"] == "succeeded", (route["workflow_id"], body)
            assert body["steps"] and all(s["status"] == "succeeded" for s in body["steps"])
        flow = next(r["execution_id"] for r in routes if r["workflow_id"] == "ecommerce-order-flow")
        tasks = [s.task_id for s in _steps(sessions, flow)]
        assert tasks == [
            "validate-order",
            "check-inventory",
            "process-payment-step",
            "send-confirmation",
        ]
        validate = _steps(sessions, flow)[0]
        assert validate.usage["provider"] == "mock"  # the agent's usage is recorded on the step
    finally:
        app.extensions["herald"].engine.dispose()
