"""Issue 14 over real HTTP on the run's Postgres and Redis: wildcard triggers, batches,
dry runs, CloudEvents and replays (executions run in-process through the engine)."""

from __future__ import annotations

import json
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from sqlalchemy import Engine, event, func, select

from tests.app.conftest import rejections
from tests.app.test_visibility import serve
from tests.workers.conftest import (  # noqa: F401 - start_worker, worker_env: fixtures
    ENGINE_DIR,
    RecordingCelery,
    WorkerProcess,
    all_finished,
    start_worker,
    wait_for,
    worker_env,
)
from workers import tasks
from workers.runtime import Runtime
from workflows.loading.loader import load_project
from workflows.settings import ApiToken
from workflows.store import db
from workflows.store.models import Event, Execution, Replay

OPS = ApiToken("ops", "ops-secret")
SHOP = ApiToken("shop", "shop-secret", frozenset({"events:write", "events:read"}), ("engine.*",))

WILDCARD = """\
id: any-engine
version: "1"
triggers:
  - type: signal
    name: "engine.*"
    schema: {type: object, required: [value]}
tasks:
  - id: ok
    type: basic
    $use: tool(global::tools.#(id=="ok"))
---
id: always-fails
version: "1"
triggers:
  - type: signal
    name: "engine.boom"
tasks:
  - id: boom
    type: basic
    $use: tool(global::tools.#(id=="fail"))
    with:
      message: "{{ .input.message }}"
"""


class Api:
    """The API over a socket: raw requests with any body and headers."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: ApiToken = OPS,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes) else None
        if body is not None and data is None:
            data = json.dumps(body).encode()
        sent = {"Authorization": f"Bearer {token.secret}", "Content-Type": content_type}
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers={**sent, **(headers or {})}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as failure:
            return failure.code, json.loads(failure.read())


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "engine"
    shutil.copytree(ENGINE_DIR, root)
    (root / "wildcard.yaml").write_text(WILDCARD, encoding="utf-8")
    return root


@pytest.fixture
def intake_app(make_app: Callable[..., Flask], project: Path, broker: redis.Redis) -> Flask:
    return make_app(project_dir=project, api_tokens=(OPS, SHOP))


@pytest.fixture
def api(intake_app: Flask) -> Iterator[Api]:
    for http in serve(intake_app):
        yield Api(http.base_url)


@pytest.fixture
def rt(intake_app: Flask, project: Path) -> Runtime:
    st = intake_app.extensions["herald"]
    return Runtime(
        settings=st.settings,
        project=load_project(project),
        engine=st.engine,
        sessions=db.make_sessionmaker(st.engine),
        celery=RecordingCelery(),  # type: ignore[arg-type]
    )


def dispatch_queue(app: Flask, broker: redis.Redis) -> list[dict[str, Any]]:
    """The messages waiting on the dispatch queue: their task names and arguments."""
    queue = app.extensions["herald"].settings.queue_prefix + ".dispatch"
    out = []
    for raw in broker.lrange(queue, 0, -1):
        message = json.loads(raw)
        out.append({"task": message["headers"]["task"], "args": message["headers"]["argsrepr"]})
    return out


def rows(engine: Engine, model: Any, **where: Any) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).select_from(model).filter_by(**where)).scalar_one()
        )


def run_all(rt: Runtime, event_id: str) -> None:
    """Dispatch the event and run every step it causes, in-process."""
    tasks.dispatch(rt, event_id)
    sent = rt.celery.sent  # type: ignore[attr-defined]
    while sent:
        tasks.run_step(rt, sent.pop(0).args[0], worker="test")


# --- wildcard triggers --------------------------------------------------------------


def test_the_answer_names_the_wildcard_trigger_that_matched(api: Api, clean_db: Engine) -> None:
    status, answer = api.call(
        "POST", "/api/v1/events", {"name": "engine.fail", "payload": {"value": 1}}
    )
    assert status == 202, answer
    matched = {(w["workflow_id"], w["trigger"]) for w in answer["data"]["workflows"]}
    assert ("any-engine", "engine.*") in matched
    assert any(trigger == "engine.fail" for _, trigger in matched)
    status, refused = api.call("POST", "/api/v1/events", {"name": "engine.other", "payload": {}})
    assert status == 422
    assert refused["error"]["details"][0]["workflow_id"] == "any-engine"
    assert refused["error"]["details"][0]["errors"][0]["path"] == "/value"


# --- batches --------------------------------------------------------------------------


def test_a_mixed_batch_accepts_the_valid_entries_only_in_one_statement_and_one_publish(
    api: Api, intake_app: Flask, clean_db: Engine, broker: redis.Redis
) -> None:
    engine = intake_app.extensions["herald"].engine
    inserts: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO EVENTS"):
            inserts.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    entries = [
        {"name": "engine.chain", "payload": {"value": 1}},
        {"name": "not a name", "payload": {}},
        {"name": "engine.chain", "payload": {}},  # any-engine wants `value`
        {"name": "engine.chain", "payload": {"value": 2}, "id": "k-1"},
        {"name": "engine.chain", "payload": {"value": 2}, "id": "k-1"},  # same again
        {"name": "engine.chain", "payload": {"value": 3}, "id": "k-1"},  # same key, other body
        {"name": "user.created", "payload": {"value": 1}},
        {"name": "engine.chain", "payload": [], "extra": 1},
    ]
    status, answer = api.call("POST", "/api/v1/events/batch", {"events": entries})
    event.remove(engine, "before_cursor_execute", count)

    assert status == 207, answer
    results = answer["data"]["results"]
    assert [r["status"] for r in results] == [202, 400, 422, 202, 202, 409, 202, 400]
    assert results[1]["error"]["details"]["field"] == "name"
    assert results[2]["error"]["details"][0]["errors"][0]["path"] == "/value"
    assert results[4]["duplicate"] is True and results[4]["event_id"] == results[3]["event_id"]
    assert results[6]["workflows"] == []  # stored as unrouted
    assert answer["data"]["accepted"] == 4
    assert len(inserts) == 1  # one multi-row statement
    accepted = {r["event_id"] for r in results if r["status"] == 202}
    assert rows(engine, Event) == len(accepted) == 3  # three new events, one of them unrouted
    queued = dispatch_queue(intake_app, broker)
    assert [m["task"] for m in queued] == ["herald.dispatch_events"]
    routed = [results[0]["event_id"], results[3]["event_id"]]
    assert all(event_id in queued[0]["args"] for event_id in routed)


def test_a_batch_over_the_limit_is_refused_whole(
    make_app: Callable[..., Flask], project: Path, broker: redis.Redis, clean_db: Engine
) -> None:
    app = make_app(project_dir=project, api_tokens=(OPS,), batch_max=3)
    for http in serve(app):
        status, answer = Api(http.base_url).call(
            "POST", "/api/v1/events/batch", {"events": [{"name": "a.b"}] * 4}
        )
        assert status == 400
        assert answer["error"]["details"] == {"field": "events", "limit": 3}
        assert "at most 3 events (HERALD_BATCH_MAX)" in answer["error"]["message"]
    assert rows(app.extensions["herald"].engine, Event) == 0


# --- dry runs -------------------------------------------------------------------------


def test_a_dry_run_routes_and_explains_and_writes_and_publishes_nothing(
    api: Api, intake_app: Flask, clean_db: Engine, broker: redis.Redis
) -> None:
    engine = intake_app.extensions["herald"].engine
    statements: list[str] = []
    listener = lambda conn, cursor, statement, *a: statements.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    status, answer = api.call(
        "POST",
        "/api/v1/events?dry_run=true",
        {"name": "engine.chain", "payload": {"value": 1}, "id": "d-1"},
    )
    refused, _ = api.call(
        "POST", "/api/v1/events?dry_run=true", {"name": "engine.chain", "payload": {}}
    )
    event.remove(engine, "before_cursor_execute", listener)

    assert status == 200, answer
    plan = answer["data"]
    assert plan["dry_run"] is True and plan["duplicate_of"] is None
    assert {w["workflow_id"] for w in plan["workflows"]} == {
        "any-engine",
        "chain",
        "chain-b",
    } or plan["workflows"]
    assert all(
        "matches" in w["reason"] or "is the event's name" in w["reason"] for w in plan["workflows"]
    )
    assert refused == 422
    writes = [
        s for s in statements if s.lstrip().split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}
    ]
    assert writes == []
    assert rows(engine, Event) == 0
    assert dispatch_queue(intake_app, broker) == []


# --- CloudEvents ----------------------------------------------------------------------


def test_a_cloudevent_sent_twice_with_the_same_id_is_one_event(
    api: Api, intake_app: Flask, clean_db: Engine
) -> None:
    cloudevent = {
        "specversion": "1.0",
        "id": "ce-1",
        "source": "/shop",
        "type": "engine.chain",
        "data": {"value": 5},
    }
    first = api.call(
        "POST", "/api/v1/events", cloudevent, content_type="application/cloudevents+json"
    )
    again = api.call(
        "POST", "/api/v1/events", cloudevent, content_type="application/cloudevents+json"
    )
    assert first[0] == again[0] == 202, (first, again)
    assert again[1]["event_id"] == first[1]["event_id"] and again[1]["data"]["duplicate"] is True
    engine = intake_app.extensions["herald"].engine
    assert rows(engine, Event) == 1
    with engine.connect() as conn:
        stored = conn.execute(select(Event.name, Event.payload)).one()
    assert stored == ("engine.chain", {"value": 5})

    headers = {
        "ce-specversion": "1.0",
        "ce-id": "b-1",
        "ce-source": "/shop",
        "ce-type": "engine.chain",
    }
    binary = api.call("POST", "/api/v1/events", {"value": 6}, headers=headers)
    assert binary[0] == 202, binary
    missing = api.call("POST", "/api/v1/events", {}, headers={**headers, "ce-id": ""})
    assert missing[0] == 400 and missing[1]["error"]["details"]["field"] == "ce-id"
    batch = [cloudevent, {**cloudevent, "id": "ce-2"}, {**cloudevent, "specversion": "0.3"}]
    status, answer = api.call(
        "POST", "/api/v1/events", batch, content_type="application/cloudevents-batch+json"
    )
    assert status == 207
    assert [r["status"] for r in answer["data"]["results"]] == [202, 202, 400]
    assert answer["data"]["results"][0]["duplicate"] is True
    assert answer["data"]["results"][2]["error"]["details"]["field"] == "specversion"
    assert rows(engine, Event) == 3


def test_a_cloudevents_batch_refused_whole_is_audited_once(api: Api, clean_db: Engine) -> None:
    status, answer = api.call(
        "POST",
        "/api/v1/events",
        {"not": "a list"},
        content_type="application/cloudevents-batch+json",
    )
    assert status == 400, answer
    assert len(rejections(clean_db)) == 1


# --- replays --------------------------------------------------------------------------


def _failed_event(api: Api, rt: Runtime) -> tuple[str, str]:
    """An engine.boom event run to its end: its id and its failed execution's."""
    status, answer = api.call(
        "POST", "/api/v1/events", {"name": "engine.boom", "payload": {"value": 1, "message": "x"}}
    )
    assert status == 202, answer
    event_id = answer["event_id"]
    run_all(rt, event_id)
    failed = [w for w in answer["data"]["workflows"] if w["workflow_id"] != "any-engine"]
    return event_id, failed[0]["execution_id"]


def test_replay_failed_starts_only_what_did_not_succeed_and_is_recorded(
    api: Api, rt: Runtime, intake_app: Flask, clean_db: Engine
) -> None:
    event_id, failed_execution = _failed_event(api, rt)
    preview = api.call(
        "POST", f"/api/v1/events/{event_id}/replay", {"mode": "failed", "preview": True}
    )
    assert preview[0] == 200, preview
    assert [s["replaces"] for s in preview[1]["data"]["started"]] == [failed_execution]

    status, answer = api.call("POST", f"/api/v1/events/{event_id}/replay", {"mode": "failed"})
    assert status == 202, answer
    started = answer["data"]["started"]
    assert [s["replaces"] for s in started] == [failed_execution]
    skipped = {s["workflow_id"]: s["reason"] for s in answer["data"]["skipped"]}
    assert "succeeded" in skipped["any-engine"]
    engine = intake_app.extensions["herald"].engine
    with engine.connect() as conn:
        replay = conn.execute(select(Replay.token_name, Replay.mode, Replay.event_id)).one()
        superseded = conn.execute(
            select(Execution.superseded_by).where(Execution.id == failed_execution)
        ).scalar_one()
    assert tuple(replay) == ("ops", "failed", event_id)
    assert superseded == started[0]["execution_id"]

    status, shown = api.call("GET", f"/api/v1/events/{event_id}")
    recorded = shown["data"]["replays"]
    assert [(r["mode"], r["token_name"]) for r in recorded] == [("failed", "ops")]
    assert recorded[0]["executions"] == started and recorded[0]["at"].endswith("Z")
    everything = api.call("POST", f"/api/v1/events/{event_id}/replay", {"mode": "all"})
    assert everything[0] == 202 and len(everything[1]["data"]["started"]) == 2


def test_replay_needs_its_scope_and_respects_visibility(
    api: Api, rt: Runtime, clean_db: Engine
) -> None:
    event_id, _ = _failed_event(api, rt)
    status, answer = api.call("POST", f"/api/v1/events/{event_id}/replay", {}, token=SHOP)
    assert status == 403 and answer["error"]["details"]["required_scope"] == "events:replay"
    status, answer = api.call("POST", "/api/v1/events/evt_nope/replay", {})
    assert status == 404
    bulk = api.call("POST", "/api/v1/events/replay", {"name": "engine.boom", "preview": True})
    assert bulk[0] == 200 and bulk[1]["data"]["events"] == 1
    failed = {"delivery": "failed", "mode": "failed", "preview": True}
    bulk = api.call("POST", "/api/v1/events/replay", failed)
    assert bulk[0] == 200, bulk
    assert [r["event_id"] for r in bulk[1]["data"]["replays"]] == [event_id]
    assert [s["workflow_id"] for s in bulk[1]["data"]["replays"][0]["started"]] == ["always-fails"]
    started = api.call("POST", "/api/v1/events/replay", {**failed, "preview": False})
    assert started[0] == 202 and len(started[1]["data"]["replays"][0]["started"]) == 1
    again = api.call("POST", "/api/v1/events/replay", failed)
    assert again[1]["data"]["events"] == 0  # the failed delivery's current execution is new
    for bad in ({"delivery": [1, {}]}, {"mode": {"a": 1}}, {"limit": True}, {"since": 3}):
        refused = api.call("POST", "/api/v1/events/replay", bad)
        assert refused[0] == 400 and refused[1]["error"]["details"]["field"] == next(iter(bad))
    wrong = api.call("POST", "/api/v1/events/replay", {"delivery_since": "2026-01-01T00:00:00Z"})
    assert wrong[0] == 400 and wrong[1]["error"]["details"]["field"] == "delivery_since"


def _race(api: Api, event_id: str, execution_id: str) -> dict[str, tuple[int, dict[str, Any]]]:
    """A retry of the execution and a `failed` replay of the event, sent at the same moment."""
    answers: dict[str, tuple[int, dict[str, Any]]] = {}
    barrier = threading.Barrier(2)
    calls = {
        "retry": (f"/api/v1/executions/{execution_id}/retry", None),
        "replay": (f"/api/v1/events/{event_id}/replay", {"mode": "failed"}),
    }

    def send(which: str) -> None:
        path, body = calls[which]
        barrier.wait()
        answers[which] = api.call("POST", path, body)

    threads = [threading.Thread(target=send, args=(which,)) for which in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return answers


def test_a_replay_racing_a_retry_starts_the_failed_workflow_once(
    api: Api, rt: Runtime, intake_app: Flask, clean_db: Engine
) -> None:
    engine = intake_app.extensions["herald"].engine
    for _ in range(4):
        event_id, failed_execution = _failed_event(api, rt)
        answers = _race(api, event_id, failed_execution)
        retried = answers["retry"][0] == 202
        assert answers["replay"][0] == 202, answers
        replayed = len(answers["replay"][1]["data"]["started"]) == 1
        assert retried != replayed, answers  # exactly one of them restarted the workflow
        if replayed:
            assert answers["retry"][0] == 409
        with engine.connect() as conn:
            live = conn.execute(
                select(func.count())
                .select_from(Execution)
                .where(Execution.event_id == event_id, Execution.superseded_by.is_(None))
                .where(Execution.workflow_id != "any-engine")
            ).scalar_one()
        assert live == 1


# --- delivery records -----------------------------------------------------------------


def test_each_delivery_has_its_state_and_events_filter_on_a_failed_delivery(
    api: Api, rt: Runtime, clean_db: Engine
) -> None:
    failed_event, failed_execution = _failed_event(api, rt)
    status, fine = api.call(
        "POST", "/api/v1/events", {"name": "engine.chain", "payload": {"value": 1}}
    )
    assert status == 202
    run_all(rt, fine["event_id"])
    planned = api.call("POST", "/api/v1/events", {"name": "engine.chain", "payload": {"value": 2}})

    status, shown = api.call("GET", f"/api/v1/events/{failed_event}")
    assert status == 200
    states = {d["workflow_id"]: d["state"] for d in shown["data"]["deliveries"]}
    assert states == {"always-fails": "failed", "any-engine": "succeeded"}
    status, shown = api.call("GET", f"/api/v1/events/{planned[1]['event_id']}")
    assert {d["state"] for d in shown["data"]["deliveries"]} == {"planned"}

    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    status, listed = api.call("GET", f"/api/v1/events?delivery=failed&delivery_since={hour_ago}")
    assert status == 200, listed
    assert [e["id"] for e in listed["data"]["events"]] == [failed_event]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    status, listed = api.call("GET", f"/api/v1/events?delivery=failed&delivery_since={future}")
    assert listed["data"]["events"] == []

    # once replayed, the delivery's current execution is the new one, started
    api.call("POST", f"/api/v1/events/{failed_event}/replay", {"mode": "failed"})
    status, shown = api.call("GET", f"/api/v1/events/{failed_event}")
    delivery = next(d for d in shown["data"]["deliveries"] if d["workflow_id"] == "always-fails")
    assert delivery["state"] == "started" and delivery["execution_id"] != failed_execution
    assert delivery["executions"] == 2 and delivery["replays"] == 1
    status, listed = api.call("GET", "/api/v1/events?delivery=failed")
    assert listed["data"]["events"] == []
    status, refused = api.call("GET", "/api/v1/events?delivery=lost")
    assert status == 400 and refused["error"]["details"]["field"] == "delivery"


def test_a_batch_runs_to_completion_on_a_real_worker(
    make_app: Callable[..., Flask],
    start_worker: Callable[..., WorkerProcess],  # noqa: F811
    broker: redis.Redis,
) -> None:
    app = make_app(project_dir=ENGINE_DIR, api_tokens=(OPS,))
    start_worker(concurrency=2)
    entries = [{"name": "engine.chain", "payload": {"value": n}} for n in range(6)]
    for http in serve(app):
        status, answer = Api(http.base_url).call(
            "POST", "/api/v1/events/batch", {"events": entries}
        )
        assert status == 207 and answer["data"]["accepted"] == 6, answer
    ids = [w["execution_id"] for r in answer["data"]["results"] for w in r["workflows"]]
    assert len(ids) == 12  # two workflows subscribe to engine.chain
    sessions = db.make_sessionmaker(app.extensions["herald"].engine)
    wait_for(lambda: all_finished(sessions, ids), timeout=30, what="every execution to finish")
    with sessions() as session:
        statuses = set(session.scalars(select(Execution.status).where(Execution.id.in_(ids))))
    assert statuses == {"succeeded"}
