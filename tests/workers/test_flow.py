"""Flow-control steps (router...) on the real database: in-process runs, then real workers."""

from __future__ import annotations

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
from workers import tasks
from workers.runtime import Runtime
from workflows.model import Project
from workflows.settings import Settings
from workflows.store.models import Execution, Step


def _run(rt: Runtime, name: str, payload: dict[str, Any]) -> str:
    event_id, (execution_id,) = accept(rt.sessions, rt.project, name, payload)
    tasks.dispatch(rt, event_id)
    drain(rt)
    return execution_id


def _rows(sessions: sessionmaker[Session], execution_id: str) -> tuple[Execution, list[Step]]:
    with sessions() as session:
        execution = session.get(Execution, execution_id)
        assert execution is not None
        steps = session.scalars(
            select(Step).where(Step.execution_id == execution_id).order_by(Step.seq)
        ).all()
        return execution, list(steps)


# -- router, in process -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "taken", "carrier", "default"),
    [
        ("US", "ship-us", "usps", False),
        ("CA", "ship-ca", "canada-post", False),
        ("JP", "ship-intl", "dhl", True),
    ],
)
def test_a_router_goes_where_its_value_routes_it(
    frt: Runtime, country: str, taken: str, carrier: str, default: bool
) -> None:
    execution, (route, shipped) = _rows(frt.sessions, _run(frt, "flow.route", {"country": country}))

    assert execution.status == "succeeded"
    assert (route.task_id, route.status, route.attempts) == ("route", "succeeded", 1)
    assert route.input == {"condition": "input.country"}
    assert route.output == {"value": country, "route": taken, "default": default}
    assert (shipped.task_id, shipped.output["carrier"]) == (taken, carrier)
    if default:  # a later task reads the router's output
        assert shipped.input["routed"] == route.output


def test_a_router_reads_earlier_tasks_outputs(frt: Runtime) -> None:
    _, steps = _rows(frt.sessions, _run(frt, "flow.route-strict", {"amount": 500, "size": "x"}))
    assert [s.task_id for s in steps] == ["measure", "size", "large"]
    assert steps[1].output["value"] == "large"


def test_a_value_with_no_route_and_no_default_goes_down_on_error_naming_the_value(
    frt: Runtime,
) -> None:
    execution, steps = _rows(
        frt.sessions, _run(frt, "flow.route-strict", {"amount": 5, "size": "huge"})
    )

    assert [s.task_id for s in steps] == ["measure", "size", "unrouted"]
    size = steps[1]
    assert (size.status, size.error["type"], size.error["value"]) == ("failed", "no_route", "huge")
    assert size.error["message"] == (
        "router 'size': value 'huge' has no route and there is no default (routes: large, small)"
    )
    assert steps[2].input["error"] == size.error  # {{ .error }} in the on_error target
    assert execution.status == "succeeded"


def test_a_value_with_no_route_and_no_on_error_fails_the_execution(frt: Runtime) -> None:
    execution, (pick,) = _rows(frt.sessions, _run(frt, "flow.route-bare", {"flag": False}))

    assert pick.status == "failed" and execution.status == "failed"
    assert execution.error["type"] == "no_route"
    assert "value 'false' has no route" in execution.error["message"]


def test_a_condition_that_cannot_evaluate_is_a_step_error(frt: Runtime) -> None:
    # input.size is missing: CEL has no such key
    execution, steps = _rows(frt.sessions, _run(frt, "flow.route-strict", {"amount": 5}))

    assert steps[1].error["type"] == "expression_error"
    assert "no key 'size'" in steps[1].error["message"]
    assert steps[2].task_id == "unrouted" and execution.status == "succeeded"


def test_a_duplicated_router_message_leaves_the_rows_of_one_delivery(frt: Runtime) -> None:
    event_id, ids = accept(frt.sessions, frt.project, "flow.route", {"country": "US"})
    tasks.dispatch(frt, event_id)
    celery: RecordingCelery = frt.celery  # type: ignore[assignment]
    (router_message,) = celery.sent
    celery.sent.append(router_message)  # the broker delivers it twice
    drain(frt)
    once = snapshot(frt.sessions, ids)

    assert tasks.run_step(frt, router_message.args[0], worker="late", redelivered=True) in (
        "dropped",
        "republished",
    )
    drain(frt)
    assert snapshot(frt.sessions, ids) == once
    assert [s[2] for s in once["steps"]] == ["route", "ship-us"]


# -- sleep and delay, in process ----------------------------------------------------------


def _sent(rt: Runtime) -> list[Any]:
    celery: RecordingCelery = rt.celery  # type: ignore[assignment]
    return celery.sent


def test_a_short_sleep_is_a_countdown_on_its_step_message(frt: Runtime) -> None:
    event_id, (execution_id,) = accept(frt.sessions, frt.project, "flow.nap", {})
    tasks.dispatch(frt, event_id)
    (first,) = _sent(frt)
    _sent(frt).clear()
    tasks.run_step(frt, first.args[0], worker="w")

    (nap_message,) = _sent(frt)
    _, (before, nap) = _rows(frt.sessions, execution_id)
    assert (nap.task_id, nap.status, nap.publish_count) == ("nap", "queued", 1)
    assert nap.not_before is not None and before.finished_at is not None
    assert 1.9 < (nap.not_before - before.finished_at).total_seconds() < 2.5
    assert nap.queued_at == nap.not_before  # due then
    assert nap_message.args == [nap.id] and 1.9 < nap_message.options["countdown"] <= 2.0
    # delivered early (a redelivery): the step is not due, nothing happens
    assert tasks.run_step(frt, nap.id, worker="early") == "dropped"
    _, (_, nap) = _rows(frt.sessions, execution_id)
    assert (nap.status, nap.attempts) == ("queued", 0)


def test_a_long_sleep_waits_in_the_database_and_the_sweep_releases_it(frt: Runtime) -> None:
    from datetime import timedelta

    from workers.sweep import sweep
    from workflows.store.models import utcnow

    event_id, (execution_id,) = accept(frt.sessions, frt.project, "flow.long-sleep", {})
    tasks.dispatch(frt, event_id)
    tasks.dispatch(frt, event_id)  # a redelivered dispatch publishes nothing either
    assert _sent(frt) == []  # a week is no countdown: nothing on the broker
    _, (nap,) = _rows(frt.sessions, execution_id)
    assert (nap.status, nap.publish_count) == ("queued", 0)
    assert nap.not_before is not None
    week = (nap.not_before - utcnow()).total_seconds()
    assert 7 * 86400 - 60 < week <= 7 * 86400

    assert sweep(frt, now=utcnow() + timedelta(days=6)).delayed == []  # not yet
    released = sweep(frt, now=nap.not_before + timedelta(seconds=1))
    assert released.delayed == [nap.id]
    assert [m.args for m in _sent(frt)] == [[nap.id]]
    drain(frt)

    execution, (nap, wake) = _rows(frt.sessions, execution_id)
    assert (nap.status, nap.output, nap.input) == (
        "succeeded",
        {"slept": 604800.0},
        {"duration": 604800.0},
    )
    assert (wake.task_id, wake.status, execution.status) == ("wake", "succeeded", "succeeded")
    assert sweep(frt, now=nap.queued_at + timedelta(days=30)).total == 0  # released once


def test_a_delay_on_a_tool_task_and_a_router_waits_before_each_starts(frt: Runtime) -> None:
    from datetime import timedelta

    from workers.sweep import sweep

    execution_id = _run(frt, "flow.delayed", {"text": "hello"})
    _, (first, remind) = _rows(frt.sessions, execution_id)
    assert (remind.status, remind.publish_count) == ("queued", 0)
    assert first.finished_at is not None and remind.not_before is not None
    assert 5399 < (remind.not_before - first.finished_at).total_seconds() < 5401

    assert sweep(frt, now=remind.not_before + timedelta(seconds=1)).delayed == [remind.id]
    tasks.run_step(frt, _sent(frt).pop(0).args[0], worker="w")
    (pick_message,) = _sent(frt)
    assert 0.9 < pick_message.options["countdown"] <= 1.0  # the router's 1 s delay
    drain(frt)

    execution, steps = _rows(frt.sessions, execution_id)
    assert [s.task_id for s in steps] == ["first", "remind", "pick", "done"]
    assert steps[1].output["reminder"] == "hello" and execution.status == "succeeded"


def test_cancelling_an_execution_cancels_its_sleeping_step(frt: Runtime) -> None:
    from datetime import timedelta

    from workers.sweep import sweep
    from workflows.engine import control
    from workflows.store.models import utcnow

    event_id, (execution_id,) = accept(frt.sessions, frt.project, "flow.long-sleep", {})
    tasks.dispatch(frt, event_id)
    with frt.sessions.begin() as session:
        control.cancel(session, execution_id, now=utcnow())

    assert sweep(frt, now=utcnow() + timedelta(days=8)).delayed == []
    execution, (nap,) = _rows(frt.sessions, execution_id)
    assert (execution.status, nap.status) == ("cancelled", "cancelled")


# -- signal, in process -------------------------------------------------------------------


def _events(sessions: sessionmaker[Session], name: str) -> list[Any]:
    from workflows.store.models import Event

    with sessions() as session:
        return list(session.scalars(select(Event).where(Event.name == name)))


def _executions_of(sessions: sessionmaker[Session], workflow_id: str) -> list[Execution]:
    with sessions() as session:
        return list(session.scalars(select(Execution).where(Execution.workflow_id == workflow_id)))


def test_a_signal_starts_the_workflows_subscribed_to_its_event(frt: Runtime) -> None:
    execution_id = _run(frt, "flow.order", {"orderId": "o_1", "total": 12.5})

    execution, steps = _rows(frt.sessions, execution_id)
    assert [s.task_id for s in steps] == ["price", "request-invoice", "done"]
    assert execution.status == "succeeded"
    (event,) = _events(frt.sessions, "flow.invoice.requested")
    assert event.payload == {"orderId": "o_1", "total": 12.5}
    assert (event.status, event.token_name) == ("dispatched", "signal:order-placed")
    assert event.idempotency_key == f"{execution_id}:request-invoice:1"
    (invoicer,) = _executions_of(frt.sessions, "invoicer")
    assert (invoicer.event_id, invoicer.status, invoicer.input) == (
        event.id,
        "succeeded",
        {"orderId": "o_1", "total": 12.5},
    )
    signal = steps[1]
    assert signal.input == {"name": "flow.invoice.requested", "payload": event.payload}
    assert signal.output == {
        "event_id": event.id,
        "name": "flow.invoice.requested",
        "workflows": [{"workflow_id": "invoicer", "execution_id": invoicer.id}],
        "duplicate": False,
    }
    assert steps[2].input["invoice"] == signal.output


def test_a_signal_whose_payload_a_subscriber_refuses_starts_nothing(frt: Runtime) -> None:
    execution_id = _run(frt, "flow.order", {"orderId": "o_2", "total": -1})

    _, steps = _rows(frt.sessions, execution_id)
    assert [s.task_id for s in steps] == ["price", "request-invoice", "invoice-refused"]
    error = steps[1].error
    assert (steps[1].status, error["type"]) == ("failed", "signal_rejected")
    assert error["errors"] == [
        {"workflow_id": "invoicer", "path": "/total", "message": error["errors"][0]["message"]}
    ]
    assert "invoicer" in error["message"]
    assert _events(frt.sessions, "flow.invoice.requested") == []
    assert _executions_of(frt.sessions, "invoicer") == []
    assert steps[2].input["error"] == error


def test_a_signal_nobody_subscribes_to_is_stored_unrouted(frt: Runtime) -> None:
    execution_id = _run(frt, "flow.shout", {})

    execution, (shout,) = _rows(frt.sessions, execution_id)
    (event,) = _events(frt.sessions, "flow.nobody.listens")
    assert (event.status, event.routes, event.payload) == ("unrouted", [], {"text": "hello"})
    assert shout.output["workflows"] == [] and execution.status == "succeeded"


def test_a_duplicated_signal_message_emits_one_event(frt: Runtime) -> None:
    event_id, ids = accept(frt.sessions, frt.project, "flow.order", {"orderId": "o", "total": 1})
    tasks.dispatch(frt, event_id)
    tasks.run_step(frt, _sent(frt).pop(0).args[0], worker="w")  # price
    (signal_message,) = list(_sent(frt))
    _sent(frt).append(signal_message)  # delivered twice
    drain(frt)
    assert tasks.run_step(frt, signal_message.args[0], worker="late", redelivered=True) in (
        "dropped",
        "republished",
    )
    drain(frt)

    assert len(_events(frt.sessions, "flow.invoice.requested")) == 1
    assert len(_executions_of(frt.sessions, "invoicer")) == 1
    assert [s[2] for s in snapshot(frt.sessions, ids)["steps"]] == [
        "price",
        "request-invoice",
        "done",
    ]


# -- real workers -------------------------------------------------------------------------


def _send(worker_env: dict[str, str], event_id: str) -> None:
    from workers.celery_app import DISPATCH_TASK, make_celery

    settings = Settings(
        broker_url=worker_env["HERALD_BROKER_URL"],
        queue_prefix=worker_env["HERALD_QUEUE_PREFIX"],
        database_url=worker_env["HERALD_DATABASE_URL"],
    )
    make_celery(settings).send_task(DISPATCH_TASK, args=[event_id])


@pytest.mark.integration
def test_routers_with_and_without_default_on_real_workers(
    flow_worker: WorkerStarter,
    worker_env: dict[str, str],
    flow_sessions: sessionmaker[Session],
    flow_project: Project,
) -> None:
    flow_worker(concurrency=2)
    sent = {
        "us": ("flow.route", {"country": "US"}),
        "default": ("flow.route", {"country": "JP"}),
        "no-route": ("flow.route-strict", {"amount": 1, "size": "huge"}),
        "bare": ("flow.route-bare", {"flag": True}),
    }
    ids: dict[str, str] = {}
    for key, (name, payload) in sent.items():
        event_id, (ids[key],) = accept(flow_sessions, flow_project, name, payload)
        _send(worker_env, event_id)

    wait_for(lambda: all_finished(flow_sessions, list(ids.values())), what="the routed executions")

    tasks_run = {key: [s.task_id for s in _rows(flow_sessions, i)[1]] for key, i in ids.items()}
    assert tasks_run == {
        "us": ["route", "ship-us"],
        "default": ["route", "ship-intl"],
        "no-route": ["measure", "size", "unrouted"],
        "bare": ["pick", "accepted"],
    }
    statuses = {key: _rows(flow_sessions, i)[0].status for key, i in ids.items()}
    assert statuses == dict.fromkeys(ids, "succeeded")
    _, (route, _) = _rows(flow_sessions, ids["default"])
    assert route.worker is not None and route.worker.startswith("test-")  # a worker settled it


@pytest.mark.integration
def test_sleeps_on_real_workers_short_by_countdown_long_released_by_the_sweep(
    flow_worker: WorkerStarter,
    worker_env: dict[str, str],
    flow_sessions: sessionmaker[Session],
    flow_project: Project,
) -> None:
    from sqlalchemy import update

    from workflows.store.models import utcnow

    flow_worker(concurrency=2)
    nap_event, (nap_id,) = accept(flow_sessions, flow_project, "flow.nap", {})
    week_event, (week_id,) = accept(flow_sessions, flow_project, "flow.long-sleep", {})
    _send(worker_env, nap_event)
    _send(worker_env, week_event)

    wait_for(lambda: all_finished(flow_sessions, [nap_id]), what="the 2 s nap")
    _, (before, nap, after) = _rows(flow_sessions, nap_id)
    assert nap.status == "succeeded" and before.finished_at and nap.started_at
    assert (nap.started_at - before.finished_at).total_seconds() >= 1.0  # 2 s, 1 s of skew allowed
    assert after.status == "succeeded"

    sleeping = wait_for(lambda: _rows(flow_sessions, week_id)[1], what="the week-long sleep's step")
    assert (sleeping[0].status, sleeping[0].publish_count) == ("queued", 0)
    # a week passes: the step is due now; the worker's own sweep releases it
    with flow_sessions.begin() as session:
        session.execute(
            update(Step)
            .where(Step.id == sleeping[0].id)
            .values(not_before=utcnow(), queued_at=utcnow())
        )
    wait_for(lambda: all_finished(flow_sessions, [week_id]), what="the released sleep")
    execution, (week, wake) = _rows(flow_sessions, week_id)
    assert (week.status, wake.status, execution.status) == ("succeeded", "succeeded", "succeeded")
    assert week.publish_count == 1  # released once, by the sweep


@pytest.mark.integration
def test_a_signal_starts_another_workflow_exactly_once_under_duplicated_messages(
    flow_worker: WorkerStarter,
    worker_env: dict[str, str],
    flow_sessions: sessionmaker[Session],
    flow_project: Project,
) -> None:
    import threading

    from workers.celery_app import make_celery, publish_step

    workers = [flow_worker(concurrency=2), flow_worker(concurrency=2)]
    celery = make_celery(
        Settings(
            broker_url=worker_env["HERALD_BROKER_URL"],
            queue_prefix=worker_env["HERALD_QUEUE_PREFIX"],
            database_url=worker_env["HERALD_DATABASE_URL"],
        )
    )
    accepted = [
        accept(flow_sessions, flow_project, "flow.order", {"orderId": f"o{i}", "total": i})
        for i in range(3)
    ]
    ids = [execution_ids[0] for _, execution_ids in accepted]
    for event_id, _ in accepted:
        _send(worker_env, event_id)
    duplicated: set[str] = set()

    def duplicate_signal_steps() -> bool:
        with flow_sessions() as session:
            rows = session.scalars(
                select(Step.id).where(Step.execution_id.in_(ids), Step.task_id == "request-invoice")
            ).all()
        for step_id in rows:
            if step_id not in duplicated:
                duplicated.add(step_id)
                threads = [
                    threading.Thread(
                        target=lambda s=step_id: publish_step(celery, s, uses="none", timeout=5)
                    )
                    for _ in range(2)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
        invoicers = _executions_of(flow_sessions, "invoicer")
        return all_finished(flow_sessions, ids + [e.id for e in invoicers]) and len(invoicers) >= 3

    wait_for(duplicate_signal_steps, timeout=40, what="the orders and their invoices")

    def dropped() -> int:  # each signal step: of its three deliveries, two are dropped
        lines = [line for w in workers for line in w.output().splitlines()]
        return sum(
            '"step.dropped"' in line and any(s in line for s in duplicated) for line in lines
        )

    wait_for(lambda: dropped() == 6, what="the duplicated deliveries to be dropped")
    assert len(duplicated) == 3
    events = _events(flow_sessions, "flow.invoice.requested")
    assert sorted(e.payload["orderId"] for e in events) == ["o0", "o1", "o2"]
    invoicers = _executions_of(flow_sessions, "invoicer")
    assert sorted(e.event_id for e in invoicers) == sorted(e.id for e in events)
    assert {e.status for e in invoicers} == {"succeeded"}
    for execution_id in ids:
        _, steps = _rows(flow_sessions, execution_id)
        assert [(s.task_id, s.status, s.attempts) for s in steps] == [
            ("price", "succeeded", 1),
            ("request-invoice", "succeeded", 1),
            ("done", "succeeded", 1),
        ]
