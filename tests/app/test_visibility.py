"""Tokens read and act on their own events and executions only (issue 11), over real HTTP.

Each test serves the API on a real port and talks to it with urllib, on the
run's Postgres; executions are created by the engine in-process.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.app.conftest import order
from tests.workers.conftest import ENGINE_DIR, RecordingCelery
from workers import tasks
from workers.runtime import Runtime
from workflows.loading.loader import load_project
from workflows.settings import ApiToken
from workflows.store import db

READ_WRITE = frozenset({"events:write", "events:read", "executions:read", "executions:write"})
SHOP = ApiToken("shop", "shop-secret", READ_WRITE, ("order.*", "engine.chain"))
ACCOUNTS = ApiToken("accounts", "accounts-secret", READ_WRITE, ("user.*", "engine.flaky"))
#: reads every token's events, but only the names its patterns match
ORDER_AUDITOR = ApiToken(
    "order-auditor",
    "auditor-secret",
    frozenset({"events:read:all", "executions:read:all"}),
    ("order.*", "engine.chain"),
)
OPS = ApiToken("ops", "ops-secret")  # every scope, every name
TOKENS = (SHOP, ACCOUNTS, ORDER_AUDITOR, OPS)


class Http:
    """The API over a real socket: ``call(method, path, token, body) -> (status, body)``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def call(
        self, method: str, path: str, token: ApiToken, body: Any = None
    ) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {token.secret}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as failure:
            return failure.code, json.loads(failure.read())

    def send(self, token: ApiToken, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        status, answer = self.call(
            "POST", "/api/v1/events", token, {"name": name, "payload": payload}
        )
        assert status == 202, answer
        return answer


def serve(app: Flask) -> Iterator[Http]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Http(f"http://127.0.0.1:{server.port}")
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def seed_http(make_app: Callable[..., Flask], broker: Any) -> Iterator[Http]:
    """The API on the seed project, with the four tokens."""
    yield from serve(make_app(api_tokens=TOKENS))


@pytest.fixture
def engine_app(make_app: Callable[..., Flask], broker: Any) -> Flask:
    return make_app(project_dir=ENGINE_DIR, api_tokens=TOKENS)


@pytest.fixture
def engine_http(engine_app: Flask) -> Iterator[Http]:
    """The API on the engine fixture project, with the four tokens."""
    yield from serve(engine_app)


@pytest.fixture
def engine_rt(engine_app: Flask) -> Runtime:
    """The engine in-process on the app's database; its publishes are recorded."""
    st = engine_app.extensions["herald"]
    return Runtime(
        settings=st.settings,
        project=load_project(ENGINE_DIR),
        engine=st.engine,
        sessions=db.make_sessionmaker(st.engine),
        celery=RecordingCelery(),  # type: ignore[arg-type]
    )


def ids(answer: dict[str, Any], key: str) -> set[str]:
    return {item["id"] for item in answer["data"][key]}


def test_a_token_reads_only_the_events_it_sent(seed_http: Http) -> None:
    order_id = seed_http.send(SHOP, "order.created", order())["event_id"]
    signup = {"email": "secret@example.com", "firstName": "Ada"}
    signup_id = seed_http.send(ACCOUNTS, "user.created", signup)["event_id"]

    status, shop_list = seed_http.call("GET", "/api/v1/events", SHOP)
    assert status == 200 and ids(shop_list, "events") == {order_id}
    status, answer = seed_http.call("GET", f"/api/v1/events/{signup_id}", SHOP)
    assert status == 404 and answer["error"]["code"] == "not_found"
    assert "secret@example.com" not in json.dumps(answer)
    _, filtered = seed_http.call("GET", "/api/v1/events?name=user.created", SHOP)
    assert filtered["data"]["events"] == []

    _, accounts_list = seed_http.call("GET", "/api/v1/events", ACCOUNTS)
    assert ids(accounts_list, "events") == {signup_id}
    status, own = seed_http.call("GET", f"/api/v1/events/{signup_id}", ACCOUNTS)
    assert status == 200 and own["data"]["payload"] == signup
    assert own["data"]["token_name"] == "accounts"


def test_read_all_sees_every_token_but_only_the_names_it_may(seed_http: Http) -> None:
    first = seed_http.send(SHOP, "order.created", order())["event_id"]
    second = seed_http.send(OPS, "order.created", {**order(), "orderId": "o_2"})["event_id"]
    signup = seed_http.send(ACCOUNTS, "user.created", {"email": "a@example.com"})["event_id"]

    _, audited = seed_http.call("GET", "/api/v1/events", ORDER_AUDITOR)
    assert ids(audited, "events") == {first, second}
    status, _ = seed_http.call("GET", f"/api/v1/events/{signup}", ORDER_AUDITOR)
    assert status == 404
    _, everything = seed_http.call("GET", "/api/v1/events", OPS)
    assert ids(everything, "events") == {first, second, signup}


def test_own_events_page_with_the_cursor(seed_http: Http) -> None:
    mine = [
        seed_http.send(SHOP, "order.created", {**order(), "orderId": f"o_{i}"}) for i in range(3)
    ]
    for i in range(3):
        seed_http.send(ACCOUNTS, "user.created", {"email": f"u{i}@example.com"})

    _, first = seed_http.call("GET", "/api/v1/events?limit=2", SHOP)
    cursor = first["data"]["next_cursor"]
    _, second = seed_http.call("GET", f"/api/v1/events?limit=2&cursor={cursor}", SHOP)

    assert second["data"]["next_cursor"] is None
    seen = [e["id"] for e in first["data"]["events"] + second["data"]["events"]]
    assert seen == [answer["event_id"] for answer in reversed(mine)]


def _started(http: Http, rt: Runtime, token: ApiToken, name: str) -> str:
    answer = http.send(token, name, {"value": 1})
    tasks.dispatch(rt, answer["event_id"])
    sent = rt.celery.sent  # type: ignore[attr-defined]
    while sent:
        tasks.run_step(rt, sent.pop(0).args[0], worker="w")
    execution_id: str = answer["data"]["workflows"][0]["execution_id"]
    return execution_id


def test_executions_of_another_tokens_events_are_not_found(
    engine_http: Http, engine_rt: Runtime
) -> None:
    chain = _started(engine_http, engine_rt, SHOP, "engine.chain")
    flaky = _started(engine_http, engine_rt, ACCOUNTS, "engine.flaky")  # fails: retryable

    _, listed = engine_http.call("GET", "/api/v1/executions", SHOP)
    assert {e["id"] for e in listed["data"]["executions"]} >= {chain}
    assert flaky not in {e["id"] for e in listed["data"]["executions"]}
    for method, path in [
        ("GET", f"/api/v1/executions/{flaky}"),
        ("POST", f"/api/v1/executions/{flaky}/cancel"),
        ("POST", f"/api/v1/executions/{flaky}/retry"),
    ]:
        status, answer = engine_http.call(method, path, SHOP)
        assert status == 404, (method, path)
        # word for word what an id that never existed gets: the id tells nothing
        assert answer["error"] == {
            "code": "not_found",
            "message": f"no execution with id {flaky!r}",
            "details": {"execution_id": flaky},
        }

    status, own = engine_http.call("GET", f"/api/v1/executions/{flaky}", ACCOUNTS)
    assert status == 200 and own["data"]["status"] == "failed"
    status, retried = engine_http.call("POST", f"/api/v1/executions/{flaky}/retry", ACCOUNTS)
    assert status == 202 and retried["data"]["status"] == "running"
    status, _ = engine_http.call("POST", f"/api/v1/executions/{chain}/cancel", SHOP)
    assert status == 409  # its own, already finished: seen, and refused for its state


def test_read_all_sees_every_tokens_executions(engine_http: Http, engine_rt: Runtime) -> None:
    chain = _started(engine_http, engine_rt, SHOP, "engine.chain")
    flaky = _started(engine_http, engine_rt, ACCOUNTS, "engine.flaky")

    _, audited = engine_http.call("GET", "/api/v1/executions", ORDER_AUDITOR)
    audited_ids = {e["id"] for e in audited["data"]["executions"]}
    assert chain in audited_ids and flaky not in audited_ids  # its patterns: engine.chain only
    _, everything = engine_http.call("GET", "/api/v1/executions", OPS)
    assert {chain, flaky} <= {e["id"] for e in everything["data"]["executions"]}
    status, answer = engine_http.call("GET", f"/api/v1/executions/{flaky}", OPS)
    assert status == 200 and answer["data"]["input"] == {"value": 1}


def test_a_pending_execution_of_another_token_is_not_found(
    engine_http: Http, engine_rt: Runtime
) -> None:
    answer = engine_http.send(ACCOUNTS, "engine.flaky", {"secret": "s"})  # not dispatched
    planned = answer["data"]["workflows"][0]["execution_id"]

    status, _ = engine_http.call("GET", f"/api/v1/executions/{planned}", SHOP)
    assert status == 404
    status, _ = engine_http.call("POST", f"/api/v1/executions/{planned}/cancel", SHOP)
    assert status == 404
    status, shown = engine_http.call("GET", f"/api/v1/executions/{planned}", ACCOUNTS)
    assert status == 200 and shown["data"]["status"] == "pending"


def test_a_tokens_file_entry_without_scopes_may_only_send(
    make_app: Callable[..., Flask], broker: Any, tmp_path: Any
) -> None:
    tokens_file = tmp_path / "tokens.yaml"
    tokens_file.write_text("- {name: sender, token: sender-secret}\n")
    sender = ApiToken("sender", "sender-secret")
    for http in serve(make_app(tokens_file=tokens_file, api_tokens=())):
        http.send(sender, "order.created", order())
        for path in ["/api/v1/events", "/api/v1/executions", "/api/v1/workflows"]:
            status, answer = http.call("GET", path, sender)
            assert (status, answer["error"]["code"]) == (403, "forbidden"), path
