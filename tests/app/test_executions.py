"""The executions endpoints: read one with its steps, list with filters, cancel, retry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from sqlalchemy import select

from tests.app.conftest import AUTH
from tests.workers.conftest import ENGINE_DIR, accept
from workers import tasks
from workers.runtime import Runtime
from workflows.loading.loader import load_project
from workflows.settings import ApiToken
from workflows.store import db
from workflows.store.models import Step


@pytest.fixture
def engine_app(make_app: Callable[..., Flask], broker: Any) -> Flask:
    """The API on the engine fixture project (its retry publishes to the test's queues)."""
    return make_app(project_dir=ENGINE_DIR)


@pytest.fixture
def api(engine_app: Flask) -> FlaskClient:
    return engine_app.test_client()


@pytest.fixture
def engine_rt(engine_app: Flask) -> Runtime:
    """The engine in-process on the app's database; its publishes are dropped."""
    from tests.workers.conftest import RecordingCelery

    st = engine_app.extensions["herald"]
    return Runtime(
        settings=st.settings,
        project=load_project(ENGINE_DIR),
        engine=st.engine,
        sessions=db.make_sessionmaker(st.engine),
        celery=RecordingCelery(),  # type: ignore[arg-type]
    )


def _start(rt: Runtime, name: str, payload: dict[str, Any]) -> list[str]:
    event_id, ids = accept(rt.sessions, rt.project, name, payload)
    tasks.dispatch(rt, event_id)
    return ids


def _run_all(rt: Runtime) -> None:
    sent = rt.celery.sent  # type: ignore[attr-defined]
    while sent:
        tasks.run_step(rt, sent.pop(0).args[0], worker="w")


def test_an_execution_is_shown_with_its_steps(api: FlaskClient, engine_rt: Runtime) -> None:
    chain, _ = _start(engine_rt, "engine.chain", {"value": 3})
    _run_all(engine_rt)

    answer = api.get(f"/api/v1/executions/{chain}", headers=AUTH)

    assert answer.status_code == 200
    data = answer.get_json()["data"]
    assert (data["id"], data["workflow_id"], data["workflow_version"]) == (chain, "chain", "2")
    assert data["status"] == "succeeded" and data["output"] == {"result": 3}
    assert data["input"] == {"value": 3} and data["finished_at"].endswith("Z")
    first, second = data["steps"]
    assert (first["task_id"], first["seq"], first["visit"], first["attempts"]) == ("first", 1, 1, 1)
    assert first["input"] == {"value": 3} and first["output"]["ok"] is True
    assert first["worker"] == "w" and first["usage"]["duration_ms"] >= 0
    assert first["started_at"] and first["finished_at"] and second["status"] == "succeeded"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/executions/exe_nope"),
        ("post", "/api/v1/executions/exe_nope/cancel"),
        ("post", "/api/v1/executions/exe_nope/retry"),
    ],
)
def test_an_unknown_execution_is_404_in_the_envelope(
    api: FlaskClient, method: str, path: str
) -> None:
    answer = getattr(api, method)(path, headers=AUTH)
    assert answer.status_code == 404
    body = answer.get_json()
    assert body["success"] is False and body["error"]["code"] == "not_found"
    assert "exe_nope" in body["error"]["message"]


def test_reading_needs_a_token(api: FlaskClient) -> None:
    assert api.get("/api/v1/executions").status_code == 401


def test_the_list_filters_and_pages(api: FlaskClient, engine_rt: Runtime) -> None:
    ids = [i for _ in range(3) for i in _start(engine_rt, "engine.chain", {"value": 1})]
    (failing,) = _start(engine_rt, "engine.fail", {"message": "x"})

    everything = api.get("/api/v1/executions?limit=50", headers=AUTH).get_json()["data"]
    assert [e["id"] for e in everything["executions"]] == sorted([*ids, failing], reverse=True)
    assert everything["next_cursor"] is None and "steps" not in everything["executions"][0]

    chains = api.get("/api/v1/executions?workflow_id=chain", headers=AUTH).get_json()["data"]
    assert len(chains["executions"]) == 3

    seen: list[str] = []
    cursor = ""
    while True:
        page = api.get(f"/api/v1/executions?limit=2{cursor}", headers=AUTH).get_json()["data"]
        seen += [e["id"] for e in page["executions"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen == [e["id"] for e in everything["executions"]]

    pending = api.get("/api/v1/executions?status=pending&workflow_id=failing", headers=AUTH)
    assert [e["id"] for e in pending.get_json()["data"]["executions"]] == [failing]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=done", "status"),
        ("limit=0", "limit"),
        ("cursor=%%%", "cursor"),
        ("event_id=%00", "event_id"),
        ("workflow_id=" + "w" * 300, "workflow_id"),
    ],
)
def test_a_bad_list_query_is_a_400_naming_the_field(
    api: FlaskClient, query: str, field: str
) -> None:
    answer = api.get(f"/api/v1/executions?{query}", headers=AUTH)
    assert answer.status_code == 400
    assert answer.get_json()["error"]["details"]["field"] == field


def test_cancel_stops_a_running_execution_and_its_queued_steps(
    api: FlaskClient, engine_rt: Runtime
) -> None:
    chain, _ = _start(engine_rt, "engine.chain", {"value": 1})
    labels = {"workflow": "chain", "status": "cancelled"}
    before = REGISTRY.get_sample_value("herald_executions_finished_total", labels) or 0.0

    answer = api.post(f"/api/v1/executions/{chain}/cancel", headers=AUTH)

    assert answer.status_code == 200
    assert REGISTRY.get_sample_value("herald_executions_finished_total", labels) == before + 1
    data = answer.get_json()["data"]
    assert data["status"] == "cancelled" and data["finished_at"]
    assert [s["status"] for s in data["steps"]] == ["cancelled"]
    _run_all(engine_rt)  # the step's message arrives later: nothing runs
    with engine_rt.sessions() as session:
        (step,) = session.scalars(select(Step).where(Step.execution_id == chain)).all()
        assert step.status == "cancelled" and step.attempts == 0

    again = api.post(f"/api/v1/executions/{chain}/cancel", headers=AUTH)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "conflict"
    assert "already finished (cancelled)" in again.get_json()["error"]["message"]


def test_retry_resumes_a_failed_execution_from_its_failed_step(
    api: FlaskClient, engine_rt: Runtime, tmp_path: Path
) -> None:
    (flaky,) = _start(engine_rt, "engine.flaky", {})  # no counter: the template fails
    _run_all(engine_rt)
    assert (
        api.get(f"/api/v1/executions/{flaky}", headers=AUTH).get_json()["data"]["status"]
        == "failed"
    )

    answer = api.post(f"/api/v1/executions/{flaky}/retry", headers=AUTH)

    assert answer.status_code == 202
    data = answer.get_json()["data"]
    assert data["status"] == "running" and data["error"] is None and data["finished_at"] is None
    assert [(s["task_id"], s["visit"], s["status"]) for s in data["steps"]] == [
        ("flaky", 1, "failed"),
        ("flaky", 2, "queued"),
    ]
    conflict = api.post(f"/api/v1/executions/{flaky}/retry", headers=AUTH)
    assert conflict.status_code == 409
    assert "only a failed execution can be retried" in conflict.get_json()["error"]["message"]


def test_retry_of_a_succeeded_execution_is_409(api: FlaskClient, engine_rt: Runtime) -> None:
    chain, _ = _start(engine_rt, "engine.chain", {"value": 1})
    _run_all(engine_rt)
    answer = api.post(f"/api/v1/executions/{chain}/retry", headers=AUTH)
    assert answer.status_code == 409 and "is succeeded" in answer.get_json()["error"]["message"]


def test_control_needs_the_write_scope(make_app: Callable[..., Flask], engine_rt: Runtime) -> None:
    reader = ApiToken(name="reader", secret="read-only", scopes=frozenset({"executions:read:all"}))
    app = make_app(project_dir=ENGINE_DIR, api_tokens=(reader,))
    chain, _ = _start(engine_rt, "engine.chain", {"value": 1})
    headers = {"Authorization": "Bearer read-only"}
    client = app.test_client()
    assert client.get(f"/api/v1/executions/{chain}", headers=headers).status_code == 200
    answer = client.post(f"/api/v1/executions/{chain}/cancel", headers=headers)
    assert answer.status_code == 403


def test_an_execution_accepted_but_not_dispatched_reads_as_pending(
    api: FlaskClient, engine_rt: Runtime
) -> None:
    event_id, (chain, _) = accept(engine_rt.sessions, engine_rt.project, "engine.chain", {"v": 1})

    answer = api.get(f"/api/v1/executions/{chain}", headers=AUTH)

    assert answer.status_code == 200
    data = answer.get_json()["data"]
    assert (data["status"], data["event_id"], data["workflow_id"]) == ("pending", event_id, "chain")
    assert data["input"] == {"v": 1} and data["steps"] == []


def test_cancelling_before_dispatch_means_dispatch_starts_nothing(
    api: FlaskClient, engine_rt: Runtime
) -> None:
    event_id, (chain, other) = accept(engine_rt.sessions, engine_rt.project, "engine.chain", {})

    answer = api.post(f"/api/v1/executions/{chain}/cancel", headers=AUTH)
    assert answer.status_code == 200 and answer.get_json()["data"]["status"] == "cancelled"
    tasks.dispatch(engine_rt, event_id)

    shown = api.get(f"/api/v1/executions/{chain}", headers=AUTH).get_json()["data"]
    assert (shown["status"], shown["steps"]) == ("cancelled", [])
    assert [m.args for m in engine_rt.celery.sent] == [  # type: ignore[attr-defined]
        [api.get(f"/api/v1/executions/{other}", headers=AUTH).get_json()["data"]["steps"][0]["id"]]
    ]


def test_looking_up_an_execution_reads_no_payload_it_does_not_return(
    api: FlaskClient, engine_rt: Runtime
) -> None:
    """An unknown id costs the payloads of no pending event; a planned one reads one."""
    from sqlalchemy import event

    big = {"blob": "x" * 100_000}
    planned = [
        accept(engine_rt.sessions, engine_rt.project, "engine.chain", big) for _ in range(30)
    ]
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine_rt.engine, "before_cursor_execute", record)
    try:
        unknown = api.get("/api/v1/executions/exe_00000000000000000000000000", headers=AUTH)
        read_for_unknown = list(statements)
        statements.clear()
        event_id, (execution_id, *_) = planned[7]
        pending = api.get(f"/api/v1/executions/{execution_id}", headers=AUTH)
    finally:
        event.remove(engine_rt.engine, "before_cursor_execute", record)

    assert unknown.status_code == 404
    assert not [s for s in read_for_unknown if "events.payload" in s]
    assert pending.status_code == 200
    shown = pending.get_json()["data"]
    assert (shown["status"], shown["event_id"], shown["input"]) == ("pending", event_id, big)
    payload_reads = [s for s in statements if "events.payload" in s]
    assert len(payload_reads) == 1 and "events.id = " in payload_reads[0]  # by primary key
