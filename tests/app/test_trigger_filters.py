"""Trigger `filter:` expressions: an event a filter turns away starts nothing and is no 422."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from sqlalchemy import Engine, select

from tests.app.test_visibility import serve
from workflows.errors import DefinitionError
from workflows.loading.loader import load_project
from workflows.settings import ApiToken
from workflows.store.models import Event

TOKEN = ApiToken("ops", "ops-secret")

PROJECT = """\
id: big-orders
triggers:
  - type: signal
    name: order.placed
    filter: input.total > 100.0 && event.name == "order.placed"
    schema:
      type: object
      required: [vip]
      properties:
        vip: {type: string}
tasks:
  - id: note
    $use: tool(local::tools.#(id=="echo"))
    final: true
tools:
  - id: echo
    execute: ./echo.py
---
id: every-order
triggers:
  - type: signal
    name: order.*
tasks:
  - id: note
    $use: tool(local::tools.#(id=="echo"))
    final: true
tools:
  - id: echo
    execute: ./echo.py
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "orders.yaml").write_text(PROJECT, encoding="utf-8")
    (tmp_path / "echo.py").write_text("def run(input):\n    return input\n", encoding="utf-8")
    return tmp_path


@pytest.fixture
def post(
    make_app: Callable[..., Flask], project: Path, broker: redis.Redis
) -> Iterator[Callable[..., tuple[int, dict[str, Any]]]]:
    app = make_app(project_dir=project, api_tokens=(TOKEN,))

    running = serve(app)
    base_url = next(running).base_url

    def call(body: Any, query: str = "") -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            f"{base_url}/api/v1/events{query}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {TOKEN.secret}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as failure:
            return failure.code, json.loads(failure.read())

    yield call
    next(running, None)  # shuts the server down


def test_a_filter_that_turns_the_event_away_starts_nothing_and_says_why(
    post: Callable[..., tuple[int, dict[str, Any]]], clean_db: Engine
) -> None:
    # big-orders' schema wants `vip`: it does not apply, the filter turned the event away
    status, answer = post({"name": "order.placed", "payload": {"total": 50}})

    assert status == 202, answer
    data = answer["data"]
    assert [w["workflow_id"] for w in data["workflows"]] == ["every-order"]
    (filtered,) = data["filtered"]
    assert (filtered["workflow_id"], filtered["trigger"]) == ("big-orders", "order.placed")
    assert "input.total > 100.0" in filtered["reason"] and "false" in filtered["reason"]
    with clean_db.connect() as conn:
        routes = conn.execute(select(Event.routes).where(Event.id == data["event_id"])).scalar()
    assert [r["workflow_id"] for r in routes] == ["every-order"]


def test_a_filter_that_lets_the_event_through_applies_the_schema(
    post: Callable[..., tuple[int, dict[str, Any]]], clean_db: Engine
) -> None:
    status, refused = post({"name": "order.placed", "payload": {"total": 500}})
    assert status == 422
    assert refused["error"]["details"][0]["workflow_id"] == "big-orders"

    status, answer = post({"name": "order.placed", "payload": {"total": 500, "vip": "gold"}})
    assert status == 202
    assert {w["workflow_id"] for w in answer["data"]["workflows"]} == {"big-orders", "every-order"}
    assert "filtered" not in answer["data"]


def test_a_filter_that_cannot_be_evaluated_turns_the_event_away(
    post: Callable[..., tuple[int, dict[str, Any]]], clean_db: Engine
) -> None:
    status, answer = post({"name": "order.placed", "payload": {"amount": 1}})
    assert status == 202
    assert answer["data"]["filtered"][0]["reason"].startswith("filter could not be evaluated")


def test_a_dry_run_lists_the_filtered_workflows(
    post: Callable[..., tuple[int, dict[str, Any]]], clean_db: Engine
) -> None:
    status, answer = post({"name": "order.placed", "payload": {"total": 5}}, "?dry_run=true")
    assert status == 200
    assert [w["workflow_id"] for w in answer["data"]["workflows"]] == ["every-order"]
    assert [f["workflow_id"] for f in answer["data"]["filtered"]] == ["big-orders"]
    with clean_db.connect() as conn:
        assert conn.execute(select(Event.id)).first() is None


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("input.total >", "expression syntax error"),
        ("tasks.note.output == 1", "unknown variable 'tasks'"),
    ],
)
def test_a_bad_filter_is_a_load_error_with_file_and_line(
    tmp_path: Path, condition: str, message: str
) -> None:
    text = PROJECT.replace('input.total > 100.0 && event.name == "order.placed"', condition)
    (tmp_path / "orders.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "echo.py").write_text("def run(input):\n    return input\n", encoding="utf-8")
    with pytest.raises(DefinitionError) as refused:
        load_project(tmp_path)
    shown = str(refused.value)
    assert "orders.yaml:5: triggers[0].filter:" in shown and message in shown, shown


def test_a_filtered_workflow_has_a_filtered_delivery_record(
    post: Callable[..., tuple[int, dict[str, Any]]],
    make_app: Callable[..., Flask],
    project: Path,
    clean_db: Engine,
) -> None:
    _, turned_away = post({"name": "order.placed", "payload": {"total": 50}})
    _, both = post({"name": "order.placed", "payload": {"total": 500, "vip": "gold"}})
    client = make_app(project_dir=project, api_tokens=(TOKEN,)).test_client()
    auth = {"Authorization": f"Bearer {TOKEN.secret}"}

    shown = client.get(f"/api/v1/events/{turned_away['event_id']}", headers=auth).get_json()
    states = {d["workflow_id"]: d for d in shown["data"]["deliveries"]}
    assert states["every-order"]["state"] == "planned"
    assert states["big-orders"]["state"] == "filtered"
    assert states["big-orders"]["execution_id"] is None
    assert "false" in states["big-orders"]["reason"]

    listed = client.get("/api/v1/events?delivery=filtered", headers=auth).get_json()
    assert [e["id"] for e in listed["data"]["events"]] == [turned_away["event_id"]]
    assert both["event_id"] not in [e["id"] for e in listed["data"]["events"]]


def test_a_batch_entry_says_which_workflows_its_filters_turned_away(
    make_app: Callable[..., Flask], project: Path, broker: redis.Redis, clean_db: Engine
) -> None:
    client = make_app(project_dir=project, api_tokens=(TOKEN,)).test_client()
    auth = {"Authorization": f"Bearer {TOKEN.secret}"}
    answer = client.post(
        "/api/v1/events/batch",
        json={
            "events": [
                {"name": "order.placed", "payload": {"total": 5}},
                {"name": "order.placed", "payload": {"total": 500, "vip": "gold"}},
            ]
        },
        headers=auth,
    )
    assert answer.status_code == 207, answer.get_json()
    low, high = answer.get_json()["data"]["results"]
    assert [f["workflow_id"] for f in low["filtered"]] == ["big-orders"]
    assert "filtered" not in high
    listed = client.get("/api/v1/events?delivery=filtered", headers=auth).get_json()
    assert [e["id"] for e in listed["data"]["events"]] == [low["event_id"]]
