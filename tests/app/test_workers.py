"""``GET /api/v1/workers``: the fleet as the database sees it, behind the ``workers:read`` scope.

Rows are written as ``herald worker``'s heartbeat writes them, with times in the
past for a worker that went silent; the real thing (processes that beat, die
and stop) is in ``tests/workers/test_fleet_processes.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.auth import read_tokens_file
from tests.app.conftest import AUTH
from tests.app.test_openapi import assert_matches
from workflows.ids import new_id
from workflows.settings import ApiToken
from workflows.store import workers as fleet
from workflows.store.models import Event, Execution, Step, utcnow


def _worker(engine: Engine, name: str, *, seen: datetime, stopped: bool = False) -> str:
    worker_id = new_id("wkr")
    with Session(engine) as session, session.begin():
        fleet.register(
            session,
            {
                "id": worker_id,
                "hostname": f"{name}@host-1",
                "pid": 4242,
                "host": "host-1",
                "pool": "prefork",
                "concurrency": 2,
                "queues": ["herald.dispatch", "herald.steps"],
                "version": "0.1.0",
                "status": "stopped" if stopped else "running",
                "started_at": seen - timedelta(minutes=1),
                "last_seen_at": seen,
                "stopped_at": seen if stopped else None,
            },
        )
    return worker_id


def _running_step(engine: Engine, worker_id: str, *, sent_by: str | None = None) -> str:
    """A step ``worker_id`` runs, of an execution started by an event ``sent_by`` sent."""
    execution_id, step_id = new_id("exe"), new_id("stp")
    event_id = new_id("evt") if sent_by else None
    with Session(engine) as session, session.begin():
        if sent_by:
            session.add(
                Event(
                    id=event_id,
                    name="order.created",
                    payload={},
                    status="dispatched",
                    routes=[],
                    token_name=sent_by,
                    publish_count=1,
                )
            )
            session.flush()
        session.add(
            Execution(
                id=execution_id, event_id=event_id, workflow_id="wf", status="running", input={}
            )
        )
        session.flush()
        session.add(
            Step(
                id=step_id,
                execution_id=execution_id,
                task_id="charge",
                seq=1,
                visit=1,
                status="running",
                attempts=1,
                lost=0,
                worker=f"{worker_id}/77",
                worker_id=worker_id,
                started_at=utcnow(),
            )
        )
    return step_id


@pytest.fixture
def fleet_of_three(clean_db: Engine) -> dict[str, Any]:
    """An alive worker running a step, a stale one (silent for a minute), a stopped one."""
    now = utcnow()
    alive = _worker(clean_db, "alive", seen=now)
    stale = _worker(clean_db, "stale", seen=now - timedelta(minutes=1))
    stopped = _worker(clean_db, "stopped", seen=now - timedelta(minutes=2), stopped=True)
    return {
        "alive": alive,
        "stale": stale,
        "stopped": stopped,
        "step": _running_step(clean_db, alive),
    }


def test_the_fleet_shows_each_workers_state_and_what_it_runs(
    client: FlaskClient, fleet_of_three: dict[str, Any]
) -> None:
    answer = client.get("/api/v1/workers", headers=AUTH)

    assert answer.status_code == 200
    body = answer.get_json()
    assert_matches("WorkerList", body)
    data = body["data"]
    assert data["counts"] == {"alive": 1, "stale": 1, "stopped": 1}
    shown = {w["id"]: w for w in data["workers"]}
    assert {shown[fleet_of_three[s]]["state"] for s in ("alive", "stale", "stopped")} == {
        "alive",
        "stale",
        "stopped",
    }
    alive = shown[fleet_of_three["alive"]]
    assert alive["state"] == "alive" and alive["seconds_since_seen"] < 10
    assert (alive["hostname"], alive["pid"], alive["concurrency"]) == ("alive@host-1", 4242, 2)
    assert [s["step_id"] for s in alive["running"]] == [fleet_of_three["step"]]
    assert alive["running_count"] == 1
    assert alive["running"][0]["task_id"] == "charge"
    stale = shown[fleet_of_three["stale"]]
    assert (stale["state"], stale["status"], stale["running"]) == ("stale", "running", [])
    assert stale["seconds_since_seen"] >= 60
    stopped = shown[fleet_of_three["stopped"]]
    assert stopped["state"] == "stopped" and stopped["stopped_at"] is not None
    assert [w["id"] for w in data["workers"]] == sorted(shown, reverse=True)  # newest first


@pytest.mark.parametrize("state", ["alive", "stale", "stopped"])
def test_the_fleet_filters_by_state(
    client: FlaskClient, fleet_of_three: dict[str, Any], state: str
) -> None:
    data = client.get(f"/api/v1/workers?state={state}", headers=AUTH).get_json()["data"]
    assert [w["id"] for w in data["workers"]] == [fleet_of_three[state]]


def test_the_fleet_pages_with_a_cursor(client: FlaskClient, fleet_of_three: dict[str, Any]) -> None:
    seen: list[str] = []
    url = "/api/v1/workers?limit=2"
    while url:
        data = client.get(url, headers=AUTH).get_json()["data"]
        seen += [w["id"] for w in data["workers"]]
        url = f"/api/v1/workers?limit=2&cursor={data['next_cursor']}" if data["next_cursor"] else ""
    assert sorted(seen) == sorted(fleet_of_three[s] for s in ("alive", "stale", "stopped"))


def test_a_bad_state_is_a_400_naming_the_field(client: FlaskClient, clean_db: Engine) -> None:
    answer = client.get("/api/v1/workers?state=zombie", headers=AUTH)
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert (error["code"], error["details"]) == ("validation_error", {"field": "state"})
    assert "Traceback" not in answer.get_data(as_text=True)


def test_the_fleet_needs_the_workers_read_scope(
    make_app: Callable[..., Flask], clean_db: Engine, tmp_path: Path
) -> None:
    tokens_file = tmp_path / "tokens.yaml"
    tokens_file.write_text(
        "- {name: ops, token: ops-secret, scopes: [workers:read]}\n"
        "- {name: reader, token: reader-secret, scopes: [executions:read]}\n"
    )
    ops, reader = read_tokens_file(tokens_file, {})  # the scope is a known one
    app = make_app(api_tokens=(ApiToken("all", "all-secret"),), tokens_file=tokens_file)
    client = app.test_client()

    def status(secret: str) -> int:
        return client.get(
            "/api/v1/workers", headers={"Authorization": f"Bearer {secret}"}
        ).status_code

    assert ops.scopes == frozenset({"workers:read"}) and reader.name == "reader"
    assert status("ops-secret") == 200
    assert status("all-secret") == 200
    assert status("reader-secret") == 403
    forbidden = client.get("/api/v1/workers", headers={"Authorization": "Bearer reader-secret"})
    assert forbidden.get_json()["error"]["details"] == {"required_scope": "workers:read"}
    assert client.get("/api/v1/workers").status_code == 401


def test_the_workers_endpoint_is_in_the_openapi_document(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    operation = document["paths"]["/api/v1/workers"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"state", "limit", "cursor"}
    assert "workers:read" in operation["description"]


def test_a_token_sees_every_worker_but_only_the_steps_of_executions_it_may_read(
    make_app: Callable[..., Flask], clean_db: Engine
) -> None:
    worker_id = _worker(clean_db, "busy", seen=utcnow())
    mine = _running_step(clean_db, worker_id, sent_by="ops")
    _running_step(clean_db, worker_id, sent_by="someone-else")
    ops = ApiToken("ops", "ops-secret", frozenset({"workers:read"}))
    client = make_app(api_tokens=(ops,)).test_client()

    answer = client.get("/api/v1/workers", headers={"Authorization": "Bearer ops-secret"})

    (busy,) = answer.get_json()["data"]["workers"]
    assert busy["running_count"] == 2
    assert [s["step_id"] for s in busy["running"]] == [mine]
