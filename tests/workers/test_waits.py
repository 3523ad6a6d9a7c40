"""``type: wait`` on the real database: resumed by a matching event, timed out by the sweep.

In process first (the engine's resume and the sweep, on Postgres), then through the
real API (``create_app`` on the test's Postgres and Redis) with ``herald worker``
processes, restarted while the step waits.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, event, select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.workers.conftest import (
    FLOW_DIR,
    WorkerStarter,
    accept,
    all_finished,
    drain,
    wait_for,
)
from workers import tasks
from workers.runtime import Runtime
from workers.sweep import sweep
from workflows.engine import waits
from workflows.ids import new_id
from workflows.model import Project
from workflows.settings import ApiToken, Settings
from workflows.store.models import Event, Execution, Step, utcnow


def _rows(sessions: sessionmaker[Session], execution_id: str) -> tuple[Execution, list[Step]]:
    with sessions() as session:
        execution = session.get(Execution, execution_id)
        assert execution is not None
        steps = session.scalars(
            select(Step).where(Step.execution_id == execution_id).order_by(Step.seq)
        ).all()
        return execution, list(steps)


def _steps(sessions: sessionmaker[Session], execution_id: str) -> list[Step]:
    """The execution's steps in order; none while it is not dispatched yet."""
    with sessions() as session:
        query = select(Step).where(Step.execution_id == execution_id).order_by(Step.seq)
        return list(session.scalars(query).all())


def _checkout(rt: Runtime, order_id: str) -> str:
    event_id, (execution_id,) = accept(
        rt.sessions, rt.project, "flow.checkout", {"orderId": order_id}
    )
    tasks.dispatch(rt, event_id)
    drain(rt)
    return execution_id


def _payment(order_id: str, amount: float = 10.0) -> dict[str, Any]:
    payload = {"orderId": order_id, "amount": amount}
    return {"id": new_id("evt"), "name": "flow.payment.confirmed", "payload": payload}


def _resume(rt: Runtime, event: dict[str, Any]) -> waits.Resumed:
    """Resume the waits ``event`` matches, then publish (recorded) what follows, as the API does."""
    from workers.publish import publish

    with rt.sessions.begin() as session:
        found = waits.resume(session, rt.project, event, now=utcnow())
    publish(rt, found.publish)
    return found


# -- in process ------------------------------------------------------------------------------


def test_a_wait_holds_its_step_in_the_database_until_a_matching_event_resumes_it(
    frt: Runtime,
) -> None:
    first, second = _checkout(frt, "o1"), _checkout(frt, "o2")
    for execution_id in (first, second):
        execution, (_, waiting) = _rows(frt.sessions, execution_id)
        assert (execution.status, waiting.status) == ("running", "waiting")
        assert waiting.wait_event == "flow.payment.confirmed"
        assert waiting.input == {
            "wait_for": "flow.payment.confirmed",
            "condition": "event.payload.orderId == input.orderId",
            "timeout": 3600.0,
        }
    assert frt.celery.sent == []  # type: ignore[attr-defined]  # nothing on the broker

    assert _resume(frt, _payment("o9")).resumed == []  # no order o9 waits
    event = _payment("o2", 42.5)
    resumed = _resume(frt, event)

    _, (_, waiting, queued) = _rows(frt.sessions, second)
    assert (queued.task_id, queued.status) == ("ship", "queued")  # queued in that transaction
    assert resumed.resumed == [
        {"execution_id": second, "step_id": waiting.id, "task_id": "await-payment"}
    ]
    assert (waiting.status, waiting.output) == ("succeeded", event)
    drain(frt)
    execution, (_, _, ship) = _rows(frt.sessions, second)
    assert (ship.task_id, ship.input, execution.status) == ("ship", {"paid": 42.5}, "succeeded")
    assert _rows(frt.sessions, first)[1][1].status == "waiting"  # o1 still waits
    assert _resume(frt, _payment("o2")).resumed == []  # resumed once: a second payment finds none


def test_two_events_racing_for_one_wait_resume_it_once(frt: Runtime) -> None:
    execution_id = _checkout(frt, "o1")
    barrier = threading.Barrier(4)
    results: list[waits.Resumed] = []

    def pay() -> None:
        barrier.wait()
        results.append(_resume(frt, _payment("o1")))

    threads = [threading.Thread(target=pay) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(len(r.resumed) for r in results) == [0, 0, 0, 1]
    assert sum(len(r.publish) for r in results) == 1
    drain(frt)
    execution, steps = _rows(frt.sessions, execution_id)
    assert [(s.task_id, s.status) for s in steps] == [
        ("reserve", "succeeded"),
        ("await-payment", "succeeded"),
        ("ship", "succeeded"),
    ]
    assert execution.status == "succeeded"


def test_the_sweep_times_a_wait_out_down_on_timeout_once(frt: Runtime) -> None:
    execution_id = _checkout(frt, "o1")
    _, (_, waiting) = _rows(frt.sessions, execution_id)
    assert waiting.not_before is not None

    assert sweep(frt, now=utcnow() + timedelta(minutes=30)).waits == []  # not yet
    assert sweep(frt, now=waiting.not_before + timedelta(seconds=1)).waits == [waiting.id]
    assert sweep(frt, now=waiting.not_before + timedelta(days=1)).waits == []  # once
    assert _resume(frt, _payment("o1")).resumed == []  # too late: nothing to resume
    drain(frt)

    execution, (_, waited, cancel) = _rows(frt.sessions, execution_id)
    assert waited.status == "timed_out"
    assert waited.error == {
        "type": "wait_timeout",
        "message": "wait 'await-payment': no matching 'flow.payment.confirmed' event within 3600 s",
        "event": "flow.payment.confirmed",
    }
    assert (cancel.task_id, cancel.input) == (
        "cancel-order",
        {"reason": "wait_timeout", "order": "o1"},
    )
    assert execution.status == "succeeded"


def test_cancelling_an_execution_ends_its_wait(frt: Runtime) -> None:
    from workflows.engine import control

    execution_id = _checkout(frt, "o1")
    with frt.sessions.begin() as session:
        control.cancel(session, execution_id, now=utcnow())

    assert _resume(frt, _payment("o1")).resumed == []
    _, (_, waited) = _rows(frt.sessions, execution_id)
    assert waited.status == "cancelled"


def test_matching_an_event_reads_only_the_steps_waiting_for_its_name(
    frt: Runtime, clean_db: Engine
) -> None:
    """A structural guarantee: the lookup is an index scan whatever else waits."""
    _checkout(frt, "o1")
    _checkout(frt, "o2")
    others = [_checkout(frt, f"x{i}") for i in range(30)]
    with frt.sessions.begin() as session:  # 30 steps waiting for another name, 30 finished ones
        session.execute(
            update(Step)
            .where(Step.execution_id.in_(others[:15]), Step.task_id == "await-payment")
            .values(wait_event="flow.other")
        )
        session.execute(
            update(Step)
            .where(Step.execution_id.in_(others[15:]), Step.task_id == "await-payment")
            .values(status="succeeded")
        )
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        if "WHERE steps.wait_event =" in statement:
            statements.append((statement, params))

    event.listen(clean_db, "before_cursor_execute", capture)
    try:
        assert len(_resume(frt, _payment("nobody")).resumed) == 0
    finally:
        event.remove(clean_db, "before_cursor_execute", capture)
    [(statement, params)] = statements  # the one query that finds the candidates
    with clean_db.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("VACUUM ANALYZE steps")  # old row versions out of the index
        conn.exec_driver_sql("SET enable_seqscan = off")
        (plan,) = conn.exec_driver_sql(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", params
        ).scalar_one()
        conn.exec_driver_sql("RESET enable_seqscan")
    scans = [
        n for n in _nodes(plan["Plan"]) if n.get("Relation Name") == "steps" or "Index Name" in n
    ]
    assert {n.get("Index Name") for n in scans} - {None} == {"ix_steps_waiting_event"}, scans
    for scan in scans:  # the two steps waiting for payments are read, not the 62 others
        assert scan["Actual Rows"] == 2, scan
        assert scan.get("Rows Removed by Filter", 0) == 0, scan


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


# -- through the real API, with real workers -------------------------------------------------


def _api(worker_env: dict[str, str], token: ApiToken) -> Flask:
    from app import create_app

    return create_app(
        Settings(
            project_dir=FLOW_DIR,
            database_url=worker_env["HERALD_DATABASE_URL"],
            broker_url=worker_env["HERALD_BROKER_URL"],
            queue_prefix=worker_env["HERALD_QUEUE_PREFIX"],
            api_tokens=(token,),
        )
    )


def _post(app: Flask, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    answer = app.test_client().post(
        "/api/v1/events", json=body, headers={"Authorization": f"Bearer {token.secret}"}
    )
    assert answer.status_code == 202, answer.get_json()
    data: dict[str, Any] = answer.get_json()["data"]
    return data


def _close(app: Flask) -> None:
    state = app.extensions["herald"]
    state.engine.dispose()
    state.publisher.celery.close()


@pytest.fixture
def api(worker_env: dict[str, str], test_token: ApiToken) -> Iterator[list[Flask]]:
    """API apps on the test's database and broker (each one a fresh API process's state)."""
    apps: list[Flask] = []
    yield apps
    for app in apps:
        _close(app)


@pytest.mark.integration
def test_a_wait_survives_restarts_and_an_event_through_the_api_resumes_it(
    flow_worker: WorkerStarter,
    worker_env: dict[str, str],
    flow_sessions: sessionmaker[Session],
    test_token: ApiToken,
    api: list[Flask],
) -> None:
    first_api = _api(worker_env, test_token)
    api.append(first_api)
    worker = flow_worker()
    started = _post(first_api, test_token, {"name": "flow.checkout", "payload": {"orderId": "o1"}})
    [run] = started["workflows"]
    execution_id = run["execution_id"]

    def waiting() -> Step | None:
        steps = _steps(flow_sessions, execution_id)
        return steps[-1] if steps and steps[-1].status == "waiting" else None

    step = wait_for(waiting, what="the wait step to be waiting")
    worker.stop()  # every process goes: the worker and the API that started the order
    _close(first_api)
    api.remove(first_api)

    second_api = _api(worker_env, test_token)
    api.append(second_api)
    other = _post(
        second_api,
        test_token,
        {"name": "flow.payment.confirmed", "payload": {"orderId": "o2", "amount": 1}},
    )
    assert (other["resumed"], other["workflows"]) == ([], [])
    paid = _post(
        second_api,
        test_token,
        {"name": "flow.payment.confirmed", "payload": {"orderId": "o1", "amount": 42.5}},
    )
    assert paid["resumed"] == [
        {"execution_id": execution_id, "step_id": step.id, "task_id": "await-payment"}
    ]
    flow_worker()  # a new worker runs what follows
    wait_for(lambda: all_finished(flow_sessions, [execution_id]), what="the paid order")
    execution, (reserve, waited, ship) = _rows(flow_sessions, execution_id)
    assert reserve.status == "succeeded"
    assert waited.output == {
        "id": paid["event_id"],
        "name": "flow.payment.confirmed",
        "payload": {"orderId": "o1", "amount": 42.5},
    }
    assert (ship.task_id, ship.status, ship.input) == ("ship", "succeeded", {"paid": 42.5})
    assert execution.status == "succeeded"
    with flow_sessions() as session:
        event = session.get(Event, paid["event_id"])
        assert event is not None and event.resumed == paid["resumed"]


@pytest.mark.integration
def test_a_wait_times_out_released_by_the_worker_s_sweep_down_on_timeout(
    flow_worker: WorkerStarter,
    worker_env: dict[str, str],
    flow_sessions: sessionmaker[Session],
    test_token: ApiToken,
    api: list[Flask],
) -> None:
    app = _api(worker_env, test_token)
    api.append(app)
    flow_worker()
    started = _post(app, test_token, {"name": "flow.quick-checkout", "payload": {}})
    [run] = started["workflows"]

    wait_for(
        lambda: all_finished(flow_sessions, [run["execution_id"]]), what="the 2 s wait to expire"
    )
    execution, (waited, cancel) = _rows(flow_sessions, run["execution_id"])
    assert (waited.task_id, waited.status) == ("await-payment", "timed_out")
    assert waited.finished_at is not None and waited.started_at is not None
    assert (waited.finished_at - waited.started_at).total_seconds() >= 2.0
    assert (cancel.task_id, cancel.status) == ("cancel-order", "succeeded")
    assert cancel.input == {
        "reason": "wait 'await-payment': no matching 'flow.payment.confirmed' event within 2 s"
    }
    assert execution.status == "succeeded"
    late = _post(app, test_token, {"name": "flow.payment.confirmed", "payload": {}})
    assert late["resumed"] == []


@pytest.mark.integration
def test_an_event_sent_twice_resumes_its_wait_once(
    flow_worker: WorkerStarter,
    worker_env: dict[str, str],
    flow_sessions: sessionmaker[Session],
    test_token: ApiToken,
    api: list[Flask],
) -> None:
    app = _api(worker_env, test_token)
    api.append(app)
    flow_worker(concurrency=2)
    started = _post(app, test_token, {"name": "flow.checkout", "payload": {"orderId": "o1"}})
    [run] = started["workflows"]
    execution_id = run["execution_id"]
    wait_for(
        lambda: [s for s in _steps(flow_sessions, execution_id) if s.status == "waiting"],
        what="the wait step to be waiting",
    )
    payment = {"name": "flow.payment.confirmed", "payload": {"orderId": "o1", "amount": 5}}

    # the same event twice (a client retrying with its idempotency key) ...
    first = _post(app, test_token, {**payment, "id": "pay-o1"})
    again = _post(app, test_token, {**payment, "id": "pay-o1"})
    # ... and twice more at the same instant, as new events
    answers: list[dict[str, Any]] = []
    barrier = threading.Barrier(2)

    def send() -> None:
        barrier.wait()
        answers.append(_post(app, test_token, payment))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(first["resumed"]) == 1
    assert (again["duplicate"], again["event_id"], again["resumed"]) == (
        True,
        first["event_id"],
        first["resumed"],
    )
    assert [a["resumed"] for a in answers] == [[], []]
    wait_for(lambda: all_finished(flow_sessions, [execution_id]), what="the paid order")
    execution, steps = _rows(flow_sessions, execution_id)
    assert [(s.task_id, s.status, s.attempts) for s in steps] == [
        ("reserve", "succeeded", 1),
        ("await-payment", "succeeded", 1),
        ("ship", "succeeded", 1),
    ]
    assert steps[1].output["id"] == first["event_id"]
    assert execution.status == "succeeded"


def test_a_project_whose_workflows_await_nothing_does_not_look_for_waits(
    flow_project: Project,
) -> None:
    from workflows.registry import TriggerRegistry

    registry = TriggerRegistry.build(flow_project)
    assert registry.awaited("flow.payment.confirmed")
    assert not registry.awaited("flow.checkout")
