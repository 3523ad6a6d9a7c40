"""The contract client against a real HTTP server running the app (werkzeug, in a thread)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import Engine
from werkzeug.serving import make_server

from tests.app.conftest import ORDER_CREATED_WORKFLOWS, order
from tests.app.contract_client import ApiFailure, EventsClient


@pytest.fixture
def base_url(app: Flask) -> Iterator[str]:
    """The app served over HTTP on a free local port, shut down after the test."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}"
    server.shutdown()
    thread.join(timeout=5)


def test_contract_client_round_trip(base_url: str, clean_db: Engine) -> None:
    client = EventsClient(base_url, "test-token")

    answer = client.send("order.created", order(), key="order_12345")
    again = client.send("order.created", order(), key="order_12345")
    unrouted = client.send("nobody.listens")

    assert {w["workflow_id"] for w in answer["data"]["workflows"]} == ORDER_CREATED_WORKFLOWS
    assert again["data"]["duplicate"] is True and again["event_id"] == answer["event_id"]
    assert unrouted["data"]["workflows"] == []
    event = client.event(answer["event_id"])
    assert event["name"] == "order.created" and event["payload"] == order()
    assert {e["id"] for e in client.events(limit=1)} == {answer["event_id"], unrouted["event_id"]}
    assert client.health() == (200, {"status": "ok", "database": "ok", "broker": "ok"})


def test_contract_client_sees_the_documented_errors(base_url: str, clean_db: Engine) -> None:
    client = EventsClient(base_url, "test-token")
    bad = order()
    del bad["customerId"]

    with pytest.raises(ApiFailure) as invalid:
        client.send("order.created", bad)
    with pytest.raises(ApiFailure) as conflict:
        client.send("a.b", {"n": 1}, key="k")
        client.send("a.b", {"n": 2}, key="k")
    with pytest.raises(ApiFailure) as malformed:
        client.send_raw(b"{not json", "application/json")
    with pytest.raises(ApiFailure) as media:
        client.send_raw(b"name=a.b", "application/x-www-form-urlencoded")
    with pytest.raises(ApiFailure) as unauthorized:
        EventsClient(base_url, None).send("a.b")
    with pytest.raises(ApiFailure) as missing:
        client.event("evt_missing")

    assert (invalid.value.status, invalid.value.code) == (422, "schema_validation_failed")
    assert any(d["workflow_id"] == "ecommerce-order-flow" for d in invalid.value.details)
    assert (conflict.value.status, conflict.value.code) == (409, "conflict")
    assert (malformed.value.status, malformed.value.details["field"]) == (400, "body")
    assert (media.value.status, media.value.code) == (415, "unsupported_media_type")
    assert unauthorized.value.status == 401
    assert unauthorized.value.headers["WWW-Authenticate"].startswith("Bearer")
    assert (missing.value.status, missing.value.code) == (404, "not_found")
