"""Collections: a step per item, filtered, limited, in order; 1,000 items on real workers."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.workers.conftest import (
    RecordingCelery,
    WorkerStarter,
    accept,
    all_finished,
    drain,
    wait_for,
)
from tests.workers.test_flow import _rows, _send
from workers import tasks
from workers.runtime import Runtime
from workflows.model import Project
from workflows.store.models import Step


def _items(*specs: tuple[str, int, bool]) -> dict[str, Any]:
    return {"items": [{"sku": sku, "qty": qty, "fail": fail} for sku, qty, fail in specs]}


def _start(rt: Runtime, name: str, payload: dict[str, Any]) -> str:
    event_id, (execution_id,) = accept(rt.sessions, rt.project, name, payload)
    tasks.dispatch(rt, event_id)
    return execution_id


def _sent(rt: Runtime) -> list[Any]:
    celery: RecordingCelery = rt.celery  # type: ignore[assignment]
    return celery.sent


def test_a_collection_runs_its_task_per_kept_item_and_joins_outputs_in_item_order(
    frt: Runtime,
) -> None:
    payload = _items(("a", 1, False), ("skip", 0, False), ("b", 2, False), ("c", 5, False))
    execution_id = _start(frt, "flow.collect", payload)
    drain(frt)

    execution, steps = _rows(frt.sessions, execution_id)
    reserve = steps[0]
    assert (reserve.task_id, reserve.status, reserve.attempts) == ("reserve", "succeeded", 1)
    assert reserve.input["indexes"] == [0, 2, 3]  # item 1 has qty 0: filtered out
    items = [s for s in steps if s.parent_id == reserve.id]
    assert [(s.task_id, s.item_index, s.item["sku"]) for s in items] == [
        ("reserve[0]", 0, "a"),
        ("reserve[2]", 2, "b"),
        ("reserve[3]", 3, "c"),
    ]
    assert [s.input for s in items] == [
        {"sku": "a", "at": 0, "fail": False},
        {"sku": "b", "at": 2, "fail": False},
        {"sku": "c", "at": 3, "fail": False},
    ]
    assert reserve.output == [s.output for s in items]
    assert items[1].output["key"] == f"{execution_id}:reserve[2]:1"
    assert steps[-1].task_id == "after" and steps[-1].input["reserved"] == reserve.output
    assert execution.status == "succeeded"


def test_max_workers_limits_the_items_started(frt: Runtime) -> None:
    execution_id = _start(frt, "flow.collect", _items(*[(f"s{i}", 1, False) for i in range(6)]))
    tasks.run_step(frt, _sent(frt).pop(0).args[0], worker="w")

    _, steps = _rows(frt.sessions, execution_id)
    assert [s.task_id for s in steps] == ["reserve", *[f"reserve[{i}]" for i in range(4)]]
    assert steps[0].status == "waiting"
    drain(frt)
    _, steps = _rows(frt.sessions, execution_id)
    assert len(steps[0].output) == 6


def test_an_empty_list_succeeds_at_once_with_no_items(frt: Runtime) -> None:
    execution_id = _start(frt, "flow.collect", {"items": []})
    drain(frt)

    execution, steps = _rows(frt.sessions, execution_id)
    assert [(s.task_id, s.status, s.output) for s in steps][:1] == [("reserve", "succeeded", [])]
    assert [s.task_id for s in steps] == ["reserve", "after"] and execution.status == "succeeded"


def test_a_failed_item_fails_the_collection_once_the_others_finish(frt: Runtime) -> None:
    execution_id = _start(
        frt, "flow.collect", _items(("a", 1, False), ("b", 1, True), ("c", 1, False))
    )
    drain(frt)

    _, steps = _rows(frt.sessions, execution_id)
    reserve = steps[0]
    assert (reserve.status, reserve.error["type"]) == ("failed", "collection_failed")
    assert reserve.error["message"] == "collection 'reserve': 1 of 3 item(s) failed (indexes 1)"
    assert set(reserve.error["failed"]) == {"1"}
    assert {s.task_id: s.status for s in steps}["reserve[2]"] == "succeeded"
    assert steps[-1].task_id == "handle"


def test_items_that_are_not_a_list_are_a_step_error(frt: Runtime) -> None:
    execution_id = _start(frt, "flow.collect", {"items": {"a": 1}})
    drain(frt)

    _, steps = _rows(frt.sessions, execution_id)
    assert steps[0].error["type"] == "items_error"
    assert "items gave dict" in steps[0].error["message"] and steps[1].task_id == "handle"


def test_a_sequential_collection_runs_one_item_at_a_time_and_stops_at_a_failure(
    frt: Runtime,
) -> None:
    execution_id = _start(frt, "flow.collect.sequential", {"skus": ["X", "BAD", "Y"]})
    tasks.run_step(frt, _sent(frt).pop(0).args[0], worker="w")
    assert len(_sent(frt)) == 1  # one item at a time
    drain(frt)

    execution, steps = _rows(frt.sessions, execution_id)
    assert [(s.task_id, s.status) for s in steps] == [
        ("visit", "failed"),
        ("visit[0]", "succeeded"),
        ("visit[1]", "failed"),
    ]  # Y never started
    assert steps[1].input == {"sku": "X", "n": 0, "fail": False}  # item_var / index_var
    assert execution.status == "failed"


def test_a_duplicated_item_message_leaves_the_rows_of_one_delivery(frt: Runtime) -> None:
    execution_id = _start(frt, "flow.collect", _items(*[(f"s{i}", 1, False) for i in range(5)]))
    delivered: set[str] = set()
    while _sent(frt):
        message = _sent(frt).pop(0)
        if message.args[0] not in delivered:
            delivered.add(message.args[0])
            _sent(frt).append(message)
        tasks.run_step(frt, message.args[0], worker="w", redelivered=True)

    _, steps = _rows(frt.sessions, execution_id)
    assert [(s.task_id, s.attempts) for s in steps] == [
        ("reserve", 1),
        *[(f"reserve[{i}]", 1) for i in range(5)],
        ("after", 1),
    ]
    assert len(steps[0].output) == 5


@pytest.mark.integration
def test_a_thousand_items_run_on_real_workers_and_join_in_order(
    flow_worker: WorkerStarter,
    worker_env: dict[str, str],
    flow_sessions: sessionmaker[Session],
    flow_project: Project,
) -> None:
    flow_worker(concurrency=2)
    flow_worker(concurrency=2)
    payload = _items(*[(f"sku{i}", 1, False) for i in range(1000)])
    event_id, (execution_id,) = accept(flow_sessions, flow_project, "flow.collect", payload)
    _send(worker_env, event_id)

    wait_for(lambda: all_finished(flow_sessions, [execution_id]), timeout=110, what="1,000 items")

    execution, steps = _rows(flow_sessions, execution_id)
    reserve = steps[0]
    assert execution.status == "succeeded" and reserve.status == "succeeded"
    assert [o["sku"] for o in reserve.output] == [f"sku{i}" for i in range(1000)]
    with flow_sessions() as session:
        per_status = dict(
            session.execute(
                select(Step.status, func.count())
                .where(Step.parent_id == reserve.id)
                .group_by(Step.status)
            ).all()
        )
    assert per_status == {"succeeded": 1000}
    assert all(s.attempts == 1 for s in steps)
    assert [s.task_id for s in steps if s.parent_id is None] == ["reserve", "after"]
