"""POST /api/v1/events against real Postgres and Redis: every status code of the contract."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from tests.app.conftest import (
    AUTH,
    ORDER_CREATED_WORKFLOWS,
    closed_port,
    count_events,
    order,
    rejections,
)
from workflows.settings import ApiToken
from workflows.store.models import Event


def post(client: FlaskClient, body: Any, headers: dict[str, str] | None = None) -> Any:
    """POST a JSON body (or raw bytes/str) with the seed's token unless headers say otherwise."""
    sent = {"Content-Type": "application/json", **AUTH, **(headers or {})}
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post("/api/v1/events", data=data, headers=sent)


def test_seed_curl_routes_to_every_subscriber_and_publishes(
    client: FlaskClient, clean_db: Engine, broker: redis.Redis, queue_prefix: str
) -> None:
    response = post(client, {"name": "order.created", "payload": order()})

    assert response.status_code == 202
    body = response.get_json()
    assert body["success"] is True
    assert body["event_id"] == body["data"]["event_id"]
    assert body["data"]["name"] == "order.created"
    assert body["data"]["duplicate"] is False
    workflows = body["data"]["workflows"]
    assert {w["workflow_id"] for w in workflows} == ORDER_CREATED_WORKFLOWS
    assert all(w["execution_id"].startswith("exe_") for w in workflows)
    # committed with its planned executions, and the dispatch message is on the queue
    with Session(clean_db) as session:
        event = session.get(Event, body["event_id"])
        assert event is not None
        assert event.status == "accepted"
        assert event.payload == order()
        assert sorted(r["execution_id"] for r in event.routes) == sorted(
            w["execution_id"] for w in workflows
        )
        assert event.publish_count == 1
    assert broker.llen(f"{queue_prefix}.dispatch") == 1
    message = json.loads(broker.lindex(f"{queue_prefix}.dispatch", 0))
    assert message["headers"]["task"] == "herald.dispatch_event"
    assert body["event_id"] in message["headers"]["argsrepr"]


def test_unrouted_event_is_stored_and_said(client: FlaskClient, clean_db: Engine) -> None:
    response = post(client, {"name": "nobody.listens", "payload": {"x": 1}})

    assert response.status_code == 202
    data = response.get_json()["data"]
    assert data["workflows"] == []
    assert "no workflow is subscribed" in data["message"]
    assert count_events(clean_db, id=data["event_id"], status="unrouted") == 1


def test_missing_customer_id_is_422_naming_field_and_workflow(
    client: FlaskClient, clean_db: Engine, broker: redis.Redis, queue_prefix: str
) -> None:
    payload = order()
    del payload["customerId"]

    response = post(client, {"name": "order.created", "payload": payload})

    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "schema_validation_failed"
    by_workflow = {d["workflow_id"]: d["errors"] for d in error["details"]}
    assert "ecommerce-order-flow" in by_workflow
    assert {"path": "/customerId"}.items() <= by_workflow["ecommerce-order-flow"][0].items()
    assert "customerId" in by_workflow["ecommerce-order-flow"][0]["message"]
    assert count_events(clean_db) == 0
    assert broker.llen(f"{queue_prefix}.dispatch") == 0
    [rejection] = rejections(clean_db)
    assert (rejection.status_code, rejection.token_name) == (422, "test")
    assert rejection.details == error["details"]


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: the body of issue 11: 120 KB whose items are 30,000 empty objects (90,000 errors and more)
EMPTY_ITEMS = json.dumps({"name": "order.created", "payload": {"items": [{}] * 30_000}})


def test_a_422_and_its_audit_row_are_bounded(
    make_app: Callable[..., Flask], clean_db: Engine
) -> None:
    client = make_app(project_dir=EXAMPLES).test_client()
    assert 100_000 < len(EMPTY_ITEMS) < 130_000

    response = post(client, EMPTY_ITEMS)

    assert response.status_code == 422
    assert len(response.data) < 16 * 1024  # was 8.3 MB
    details = response.get_json()["error"]["details"]
    assert {d["workflow_id"] for d in details} == {"notification-sender", "order-processor"}
    assert all(len(d["errors"]) <= 20 for d in details)
    processor = next(d for d in details if d["workflow_id"] == "order-processor")
    assert len(processor["errors"]) == 20
    assert processor["errors"][5] == {
        "path": "/items/0/productId",
        "message": "items[0].productId: required field is missing",
    }
    assert processor["more_errors"] > 0 and processor["more_errors_exact"] is False
    [rejection] = rejections(clean_db)
    assert rejection.details == details  # was 8.9 MB
    assert count_events(clean_db) == 0


def test_max_errors_is_configurable(make_app: Callable[..., Flask], clean_db: Engine) -> None:
    client = make_app(project_dir=EXAMPLES, max_errors=3).test_client()
    payload = {"items": [{}] * 2}  # 5 missing fields at the top, 3 per item: 11 errors

    response = post(client, {"name": "order.created", "payload": payload})

    processor = next(
        d for d in response.get_json()["error"]["details"] if d["workflow_id"] == "order-processor"
    )
    assert len(processor["errors"]) == 3
    assert (processor["more_errors"], processor["more_errors_exact"]) == (8, True)


def test_bad_email_format_is_asserted(client: FlaskClient, clean_db: Engine) -> None:
    payload = order() | {"customerEmail": "not-an-email"}

    response = post(client, {"name": "order.created", "payload": payload})

    assert response.status_code == 422
    paths = [e["path"] for d in response.get_json()["error"]["details"] for e in d["errors"]]
    assert "/customerEmail" in paths


LONG_NAME = "a." + "b" * 254
REFUSALS = [
    # (case, body, extra headers, status, code, field named in details)
    ("bad json", b'{"name": "order.created",', {}, 400, "validation_error", "body"),
    ("body not object", [1, 2], {}, 400, "validation_error", "body"),
    ("missing name", {"payload": {}}, {}, 400, "validation_error", "name"),
    ("name not string", {"name": 5}, {}, 400, "validation_error", "name"),
    ("name not dotted", {"name": "event1"}, {}, 400, "validation_error", "name"),
    ("name with spaces", {"name": "order created.x"}, {}, 400, "validation_error", "name"),
    ("name too long", {"name": LONG_NAME}, {}, 400, "validation_error", "name"),
    ("payload not object", {"name": "a.b", "payload": [1]}, {}, 400, "validation_error", "payload"),
    ("unknown field", {"name": "a.b", "extra": 1}, {}, 400, "validation_error", "extra"),
    ("id not string", {"name": "a.b", "id": 7}, {}, 400, "validation_error", "id"),
    ("NaN number", b'{"name": "a.b", "payload": {"x": NaN}}', {}, 400, "validation_error", "body"),
    (
        "NUL in string",
        {"name": "a.b", "payload": {"x": "a\x00"}},
        {},
        400,
        "validation_error",
        "payload",
    ),
    (
        "infinite number",
        b'{"name": "a.b", "payload": {"x": 1e400}}',
        {},
        400,
        "validation_error",
        "body",
    ),
    (
        "too deep",
        b'{"name": "a.b", "payload": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        {},
        400,
        "validation_error",
        "body",
    ),
    (
        "deeper than HERALD_MAX_DEPTH",
        b'{"name": "a.b", "payload": {"a": ' + b"[" * 99 + b"]" * 99 + b"}}",
        {},
        400,
        "validation_error",
        "payload",
    ),
    (
        "NUL 400 levels down",
        b'{"name": "a.b", "payload": {"a": ' + b"[" * 399 + b'"\\u0000"' + b"]" * 399 + b"}}",
        {},
        400,
        "validation_error",
        "payload",
    ),
    (
        "not utf-8",
        b'{"name": "a.b", "payload": {"x": "\xff"}}',
        {},
        400,
        "validation_error",
        "body",
    ),
    (
        "lone surrogate",
        b'{"name": "a.b", "payload": {"x": "\\ud800"}}',
        {},
        400,
        "validation_error",
        "payload",
    ),
    (
        "NUL in key header",
        {"name": "a.b"},
        {"Idempotency-Key": "a\x00b"},
        400,
        "validation_error",
        "Idempotency-Key",
    ),
    (
        "id and header differ",
        {"name": "a.b", "id": "one"},
        {"Idempotency-Key": "two"},
        400,
        "validation_error",
        "id",
    ),
    ("no token", {"name": "a.b"}, {"Authorization": ""}, 401, "unauthorized", None),
    ("wrong token", {"name": "a.b"}, {"Authorization": "Bearer nope"}, 401, "unauthorized", None),
    ("not bearer", {"name": "a.b"}, {"Authorization": "Basic dGVzdA=="}, 401, "unauthorized", None),
    (
        "name outside patterns",
        {"name": "user.created"},
        {"Authorization": "Bearer orders"},
        403,
        "forbidden",
        "name",
    ),
    (
        "read-only token",
        {"name": "a.b"},
        {"Authorization": "Bearer reader"},
        403,
        "forbidden",
        None,
    ),
    ("text/plain", "name=a.b", {"Content-Type": "text/plain"}, 415, "unsupported_media_type", None),
    (
        "too large",
        {"name": "a.b", "payload": {"x": "y" * 20_000}},
        {},
        413,
        "payload_too_large",
        None,
    ),
]


@pytest.mark.parametrize(
    ("body", "headers", "status", "code", "field"),
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
def test_refusals(
    make_app: Callable[..., Flask],
    test_token: ApiToken,
    clean_db: Engine,
    body: Any,
    headers: dict[str, str],
    status: int,
    code: str,
    field: str | None,
) -> None:
    tokens = (
        test_token,
        ApiToken("orders", "orders", scopes=frozenset({"events:write"}), events=("order.*",)),
        ApiToken("reader", "reader", scopes=frozenset({"events:read"})),
    )
    client = make_app(api_tokens=tokens, max_body_bytes=16 * 1024).test_client()

    response = post(client, body, headers)

    assert response.status_code == status
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert error["details"]["field"] == field
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert count_events(clean_db) == 0
    if status == 401:  # counted in memory, not a row each (tests/app/test_refusals.py)
        assert rejections(clean_db) == []
        return
    [rejection] = rejections(clean_db)
    assert (rejection.status_code, rejection.code) == (status, code)
    assert rejection.request_id == response.headers["X-Request-ID"]
    sender = {"Bearer orders": "orders", "Bearer reader": "reader"}
    assert rejection.token_name == sender.get(headers.get("Authorization", ""), "test")


def test_max_depth_is_configurable(make_app: Callable[..., Flask], clean_db: Engine) -> None:
    client = make_app(max_depth=3).test_client()

    fits = post(client, {"name": "a.b", "payload": {"a": {"b": {"c": 1}}}})
    deeper = post(client, {"name": "a.b", "payload": {"a": {"b": {"c": []}}}})

    assert fits.status_code == 202
    assert deeper.status_code == 400
    details = deeper.get_json()["error"]["details"]
    assert details == {"field": "payload", "path": "/a/b/c", "max_depth": 3}


def test_too_large_is_refused_from_content_length_before_reading(
    make_app: Callable[..., Flask], clean_db: Engine
) -> None:
    client = make_app(max_body_bytes=100).test_client()

    response = client.post(
        "/api/v1/events",
        data=b"x" * 101,
        headers={**AUTH, "Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert response.get_json()["error"]["details"] == {"limit": 100}


def test_rate_limit_answers_429_with_retry_after(
    make_app: Callable[..., Flask], clean_db: Engine
) -> None:
    client = make_app(rate_limit_per_second=2).test_client()

    statuses = [post(client, {"name": "a.b"}).status_code for _ in range(4)]

    assert statuses[:2] == [202, 202]
    assert 429 in statuses[2:]
    limited = post(client, {"name": "a.b"})
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1


def test_a_cloudevents_batch_takes_one_request_of_the_rate_limit(
    make_app: Callable[..., Flask], clean_db: Engine
) -> None:
    client = make_app(rate_limit_per_second=2).test_client()
    cloudevent = {"specversion": "1.0", "id": "r-1", "source": "/shop", "type": "a.b"}
    headers = {"Content-Type": "application/cloudevents-batch+json"}

    statuses = [post(client, [cloudevent], headers).status_code for _ in range(2)]

    assert statuses == [207, 207]  # a batch counted twice would have spent the burst of 2


def test_database_down_is_503_and_accepts_nothing(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{closed_port()}/herald"
    client = make_app(database_url=url).test_client()

    response = post(client, {"name": "order.created", "payload": order()})

    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "unavailable"
    assert "Traceback" not in response.get_data(as_text=True)


def test_broker_down_still_accepts_durably(
    make_app: Callable[..., Flask], clean_db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_app(broker_url=f"redis://127.0.0.1:{closed_port()}/0").test_client()
    started = datetime.now(UTC)

    with caplog.at_level(logging.INFO, logger="herald"):
        response = post(client, {"name": "order.created", "payload": order()})

    assert response.status_code == 202
    assert datetime.now(UTC) - started < timedelta(seconds=3), "publishing must fail fast"
    event_id = response.get_json()["event_id"]
    assert count_events(clean_db, id=event_id, status="accepted", publish_count=0) == 1
    failed = [r for r in caplog.records if getattr(r, "kind", "") == "event.publish_failed"]
    assert [r.event_id for r in failed] == [event_id]  # type: ignore[attr-defined]


def test_broker_down_is_not_retried_by_every_request(
    make_app: Callable[..., Flask], clean_db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(broker_url=f"redis://127.0.0.1:{closed_port()}/0")
    client = app.test_client()
    attempts: list[str] = []
    publisher = app.extensions["herald"].publisher
    assert publisher.direct is not None  # a Redis broker: dispatches are pushed straight to it
    real_push = publisher.direct.push

    def counting_push(messages: Any) -> Any:
        attempts.extend(event_id for event_id, _ in messages)
        return real_push(messages)

    publisher.direct.push = counting_push

    with caplog.at_level(logging.INFO, logger="herald"):
        answers = [post(client, {"name": "order.created", "payload": order()}) for _ in range(3)]

    assert [a.status_code for a in answers] == [202, 202, 202]
    assert len(attempts) == 1  # the next ones are left to the sweep during the cool-down
    assert count_events(clean_db, status="accepted", publish_count=0) == 3
    failed = [r for r in caplog.records if getattr(r, "kind", "") == "event.publish_failed"]
    assert len(failed) == 3


def test_same_id_twice_gives_one_event_and_the_original_answer(
    client: FlaskClient, clean_db: Engine, broker: redis.Redis, queue_prefix: str
) -> None:
    body = {"name": "order.created", "payload": order(), "id": "order_12345-created"}

    first = post(client, body)
    second = post(client, body)

    assert (first.status_code, second.status_code) == (202, 202)
    assert second.get_json()["data"]["duplicate"] is True
    assert second.get_json()["data"] == {**first.get_json()["data"], "duplicate": True}
    assert second.get_json()["event_id"] == first.get_json()["event_id"]
    assert count_events(clean_db) == 1
    assert broker.llen(f"{queue_prefix}.dispatch") == 1


def test_idempotency_key_header_is_the_same_as_id(client: FlaskClient, clean_db: Engine) -> None:
    first = post(client, {"name": "a.b", "payload": {"n": 1}}, {"Idempotency-Key": "k-1"})
    second = post(client, {"name": "a.b", "payload": {"n": 1}, "id": "k-1"})

    assert second.get_json()["data"]["duplicate"] is True
    assert second.get_json()["event_id"] == first.get_json()["event_id"]


def test_same_key_different_body_is_409(client: FlaskClient, clean_db: Engine) -> None:
    post(client, {"name": "a.b", "payload": {"n": 1}, "id": "k-1"})

    response = post(client, {"name": "a.b", "payload": {"n": 2}, "id": "k-1"})

    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "conflict"
    assert count_events(clean_db) == 1


def test_keys_are_per_token(
    make_app: Callable[..., Flask], test_token: ApiToken, clean_db: Engine
) -> None:
    other = ApiToken("other", "other-token")
    client = make_app(api_tokens=(test_token, other)).test_client()

    post(client, {"name": "a.b", "id": "shared"})
    response = post(
        client, {"name": "a.b", "id": "shared"}, {"Authorization": "Bearer other-token"}
    )

    assert response.get_json()["data"]["duplicate"] is False
    assert count_events(clean_db) == 2


def test_expired_key_makes_a_new_event(client: FlaskClient, clean_db: Engine) -> None:
    first = post(client, {"name": "a.b", "id": "k-1"}).get_json()["event_id"]
    with clean_db.begin() as conn:  # age the first event past the 24 h TTL
        conn.execute(
            update(Event)
            .where(Event.id == first)
            .values(received_at=datetime.now(UTC) - timedelta(hours=25))
        )

    second = post(client, {"name": "a.b", "id": "k-1"}).get_json()

    assert second["data"]["duplicate"] is False
    assert second["event_id"] != first
    assert count_events(clean_db) == 2


def test_concurrent_identical_requests_make_one_event(app: Flask, clean_db: Engine) -> None:
    body = {"name": "order.created", "payload": order(), "id": "race"}
    barrier = threading.Barrier(8)
    answers: list[Any] = []

    def send() -> None:
        client = app.test_client()
        barrier.wait()
        answers.append(post(client, body))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [a.status_code for a in answers] == [202] * 8
    assert len({a.get_json()["event_id"] for a in answers}) == 1
    assert sum(not a.get_json()["data"]["duplicate"] for a in answers) == 1
    assert count_events(clean_db) == 1


def test_concurrent_reuse_of_an_expired_key_makes_one_new_event(
    app: Flask, clean_db: Engine
) -> None:
    body = {"name": "a.b", "id": "old-key"}
    first = post(app.test_client(), body).get_json()["event_id"]
    with clean_db.begin() as conn:
        conn.execute(
            update(Event)
            .where(Event.id == first)
            .values(received_at=datetime.now(UTC) - timedelta(days=2))
        )
    barrier = threading.Barrier(6)
    answers: list[Any] = []

    def send() -> None:
        client = app.test_client()
        barrier.wait()
        answers.append(post(client, body).get_json())

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({a["event_id"] for a in answers}) == 1
    assert answers[0]["event_id"] != first
    assert sum(not a["data"]["duplicate"] for a in answers) == 1
    assert count_events(clean_db) == 2


def test_request_id_is_echoed_and_recorded(client: FlaskClient, clean_db: Engine) -> None:
    response = post(client, {"name": "a.b"}, {"X-Request-ID": "client-req-42"})

    assert response.headers["X-Request-ID"] == "client-req-42"
    with Session(clean_db) as session:
        event = session.scalars(select(Event)).one()
    assert event.request_id == "client-req-42"
    generated = post(client, {"name": "a.b"}).headers["X-Request-ID"]
    assert generated.startswith("req_")


def test_log_lines_carry_ids_and_never_the_token(
    client: FlaskClient, clean_db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    bad = order()
    del bad["customerId"]
    with caplog.at_level(logging.INFO, logger="herald"):
        routed = post(client, {"name": "order.created", "payload": order()})
        post(client, {"name": "order.created", "payload": bad})
        post(client, {"name": "nobody.listens"})

    kinds = {getattr(r, "kind", None): r for r in caplog.records}
    assert {"event.received", "event.routed", "event.validation_failed", "event.unrouted"} <= set(
        kinds
    )
    assert kinds["event.routed"].event_id == routed.get_json()["event_id"]  # type: ignore[attr-defined]
    received = [r for r in caplog.records if getattr(r, "kind", "") == "event.received"]
    assert received[0].event_id == routed.get_json()["event_id"]  # type: ignore[attr-defined]
    assert set(kinds["event.routed"].workflows) == ORDER_CREATED_WORKFLOWS  # type: ignore[attr-defined]
    lifecycle = {"event.received", "event.routed", "event.validation_failed", "event.unrouted"}
    ours = [r for r in caplog.records if getattr(r, "kind", None) in lifecycle]
    assert all(getattr(r, "request_id", None) and getattr(r, "event_id", None) for r in ours)
    from workflows.logs import JsonFormatter

    lines = [JsonFormatter().format(r) for r in caplog.records]
    assert all(json.loads(line) for line in lines)
    assert not any("test-token" in line or "customer@example.com" in line for line in lines)


def _order_without_customer() -> dict[str, Any]:
    payload = order()
    del payload["customerId"]
    return payload


SEED = {"name": "order.created", "payload": order()}
#: every status code of the contract: (status, code, app changes, requests; the last one answers)
CONTRACT: list[tuple[int, str, dict[str, Any], list[tuple[Any, dict[str, str]]]]] = [
    (202, "", {}, [(SEED, {})]),
    (202, "", {"broker_url": f"redis://127.0.0.1:{closed_port()}/0"}, [(SEED, {})]),
    (400, "validation_error", {}, [(b"{", {})]),
    (401, "unauthorized", {}, [(SEED, {"Authorization": "Bearer wrong"})]),
    (403, "forbidden", {"scopes": {"events:read"}}, [(SEED, {})]),
    (409, "conflict", {}, [({**SEED, "id": "k"}, {}), ({"name": "a.b", "id": "k"}, {})]),
    (413, "payload_too_large", {"max_body_bytes": 64}, [(SEED, {})]),
    (415, "unsupported_media_type", {}, [("x", {"Content-Type": "text/plain"})]),
    (
        422,
        "schema_validation_failed",
        {},
        [({"name": "order.created", "payload": _order_without_customer()}, {})],
    ),
    (429, "rate_limited", {"rate_limit_per_second": 1}, [(SEED, {}), (SEED, {})]),
    (
        503,
        "unavailable",
        {"database_url": f"postgresql://postgres@127.0.0.1:{closed_port()}/x"},
        [(SEED, {})],
    ),
]


@pytest.mark.parametrize(
    ("status", "code", "changes", "requests"),
    CONTRACT,
    ids=[f"{row[0]}-{row[1] or 'accepted'}-{i}" for i, row in enumerate(CONTRACT)],
)
def test_every_status_code_of_the_contract(
    make_app: Callable[..., Flask],
    test_token: ApiToken,
    clean_db: Engine,
    status: int,
    code: str,
    changes: dict[str, Any],
    requests: list[tuple[Any, dict[str, str]]],
) -> None:
    changes = dict(changes)
    scopes = changes.pop("scopes", None)
    if scopes is not None:
        changes["api_tokens"] = (ApiToken("test", "test-token", scopes=frozenset(scopes)),)
    client = make_app(**changes).test_client()

    for body, headers in requests:
        response = post(client, body, headers)

    assert response.status_code == status
    body = response.get_json()
    assert body["success"] is (status == 202)
    if status == 202:
        assert count_events(clean_db, id=body["event_id"]) == 1  # durable before the answer
    else:
        assert body["error"]["code"] == code
        assert "Traceback" not in response.get_data(as_text=True)
