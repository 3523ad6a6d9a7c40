"""The executions API shows flow-control steps: their type, status, attempts, input, output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.app.conftest import AUTH
from tests.workers.conftest import FLOW_DIR, RecordingCelery, accept
from workers import tasks
from workers.runtime import Runtime
from workflows.loading.loader import load_project
from workflows.store import db


@pytest.fixture
def flow_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(project_dir=FLOW_DIR)


@pytest.fixture
def flow_rt(flow_app: Flask) -> Runtime:
    st = flow_app.extensions["herald"]
    return Runtime(
        settings=st.settings,
        project=load_project(FLOW_DIR),
        engine=st.engine,
        sessions=db.make_sessionmaker(st.engine),
        celery=RecordingCelery(),  # type: ignore[arg-type]
    )


def _run(rt: Runtime, name: str, payload: dict[str, Any]) -> str:
    event_id, (execution_id,) = accept(rt.sessions, rt.project, name, payload)
    tasks.dispatch(rt, event_id)
    sent = rt.celery.sent  # type: ignore[attr-defined]
    while sent:
        message = sent.pop(0)
        if message.name.endswith("dispatch_event"):
            tasks.dispatch(rt, message.args[0])
        elif not message.options.get("countdown"):
            tasks.run_step(rt, message.args[0], worker="w")
    return execution_id


def _steps(client: FlaskClient, execution_id: str) -> list[dict[str, Any]]:
    answer = client.get(f"/api/v1/executions/{execution_id}", headers=AUTH)
    assert answer.status_code == 200
    steps: list[dict[str, Any]] = answer.get_json()["data"]["steps"]
    return steps


def test_router_signal_and_sleep_steps_are_shown_with_their_type(
    flow_app: Flask, flow_rt: Runtime
) -> None:
    client = flow_app.test_client()

    route, shipped = _steps(client, _run(flow_rt, "flow.route", {"country": "CA"}))
    assert (route["type"], route["status"], route["attempts"]) == ("router", "succeeded", 1)
    assert route["input"] == {"condition": "input.country"}
    assert route["output"] == {"value": "CA", "route": "ship-ca", "default": False}
    assert (shipped["type"], shipped["task_id"]) == ("basic", "ship-ca")

    steps = _steps(client, _run(flow_rt, "flow.order", {"orderId": "o", "total": 2}))
    assert [(s["task_id"], s["type"]) for s in steps] == [
        ("price", "basic"),
        ("request-invoice", "signal"),
        ("done", "basic"),
    ]
    signal = steps[1]
    assert (signal["type"], signal["status"]) == ("signal", "succeeded")
    assert signal["input"] == {
        "name": "flow.invoice.requested",
        "payload": {"orderId": "o", "total": 2},
    }
    (invoice,) = signal["output"]["workflows"]
    assert _steps(client, invoice["execution_id"])[0]["status"] == "succeeded"

    (sleeping,) = _steps(client, _run(flow_rt, "flow.long-sleep", {}))
    assert (sleeping["type"], sleeping["status"], sleeping["attempts"]) == ("sleep", "queued", 0)
    assert sleeping["not_before"] is not None and sleeping["not_before"].endswith("Z")


def test_a_collection_s_items_are_shown_as_its_children(flow_app: Flask, flow_rt: Runtime) -> None:
    client = flow_app.test_client()
    payload = {
        "items": [{"sku": "a", "qty": 1, "fail": False}, {"sku": "b", "qty": 2, "fail": True}]
    }

    reserve, first, second, handle = _steps(client, _run(flow_rt, "flow.collect", payload))

    assert (reserve["type"], reserve["status"]) == ("collection", "failed")
    assert reserve["error"]["type"] == "collection_failed"
    assert [
        (s["task_id"], s["type"], s["parent_id"], s["item_index"]) for s in (first, second)
    ] == [
        ("reserve[0]", "basic", reserve["id"], 0),
        ("reserve[1]", "basic", reserve["id"], 1),
    ]
    assert second["item"] == {"sku": "b", "qty": 2, "fail": True}
    assert (second["status"], second["attempts"]) == ("failed", 1)
    assert handle["task_id"] == "handle" and handle["parent_id"] is None
