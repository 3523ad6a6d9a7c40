"""Dispatch: one execution per route, exactly once, first steps queued and published."""

from __future__ import annotations

import threading

from sqlalchemy import select

from tests.workers.conftest import accept, snapshot
from workers import tasks
from workers.celery_app import STEP_TASK
from workers.runtime import Runtime
from workflows.ids import new_id
from workflows.model import ExecutionStatus
from workflows.store.models import Event, Execution


def test_dispatch_creates_each_routed_execution_with_its_first_step(rt: Runtime) -> None:
    event_id, ids = accept(rt.sessions, rt.project, "engine.chain", {"value": 7})
    assert len(ids) == 2  # chain and chain-executable both subscribe

    created = tasks.dispatch(rt, event_id)

    assert sorted(created) == sorted(ids)
    rows = snapshot(rt.sessions, ids)
    assert sorted((e[1], e[2], e[3]) for e in rows["executions"]) == [
        ("chain", "pending", 1),
        ("chain-executable", "pending", 1),
    ]
    assert sorted((s[1], s[2], s[3], s[4]) for s in rows["steps"]) == [
        (1, "echo", 1, "queued"),
        (1, "first", 1, "queued"),
    ]
    with rt.sessions() as session:
        event = session.get(Event, event_id)
        assert event is not None and event.status == "dispatched" and event.dispatched_at
        versions = dict(
            session.execute(select(Execution.workflow_id, Execution.workflow_version)).all()
        )
    assert versions == {"chain": "2", "chain-executable": "1"}
    sent = rt.celery.sent  # type: ignore[attr-defined]
    assert [m.name for m in sent] == [STEP_TASK, STEP_TASK]
    assert all(m.options["soft_time_limit"] > 0 for m in sent)


def test_a_second_delivery_creates_nothing_and_publishes_the_still_queued_steps(
    rt: Runtime,
) -> None:
    event_id, ids = accept(rt.sessions, rt.project, "engine.chain", {"value": 1})
    tasks.dispatch(rt, event_id)
    once = snapshot(rt.sessions, ids)

    tasks.dispatch(rt, event_id)

    assert snapshot(rt.sessions, ids) == once
    # the redelivery may follow a crash between commit and publish: it publishes again
    assert len(rt.celery.sent) == 4  # type: ignore[attr-defined]


def test_concurrent_deliveries_create_each_execution_once(rt: Runtime) -> None:
    event_id, ids = accept(rt.sessions, rt.project, "engine.chain", {"value": 1})
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def deliver() -> None:
        barrier.wait()
        try:
            tasks.dispatch(rt, event_id)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    rows = snapshot(rt.sessions, ids)
    assert len(rows["executions"]) == 2 and len(rows["steps"]) == 2


def test_a_route_whose_workflow_is_gone_fails_with_a_clear_error(rt: Runtime) -> None:
    event_id, _ = accept(rt.sessions, rt.project, "engine.fail", {"message": "x"})
    with rt.sessions.begin() as session:
        event = session.get(Event, event_id)
        assert event is not None
        missing = {"workflow_id": "retired", "version": "3", "execution_id": new_id("exe")}
        event.routes = [*event.routes, missing]

    tasks.dispatch(rt, event_id)

    with rt.sessions() as session:
        execution = session.get(Execution, missing["execution_id"])
    assert execution is not None
    assert execution.status == ExecutionStatus.FAILED.value
    assert execution.error["type"] == "workflow_missing"
    assert (
        "'retired'" in execution.error["message"]
        and "no longer defined" in execution.error["message"]
    )


def test_an_unknown_event_id_is_dropped(rt: Runtime) -> None:
    assert tasks.dispatch(rt, "evt_missing") == []
    assert rt.celery.sent == []  # type: ignore[attr-defined]
