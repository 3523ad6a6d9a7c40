"""GET /api/v1/events and /api/v1/events/<id>: the event, its routes, filters, pages, scopes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tests.app.conftest import AUTH, ORDER_CREATED_WORKFLOWS, order
from workflows.settings import ApiToken
from workflows.store.models import Execution


def send(client: FlaskClient, name: str, payload: dict[str, object] | None = None) -> str:
    """POST an event and return its id."""
    response = client.post("/api/v1/events", json={"name": name, "payload": payload}, headers=AUTH)
    assert response.status_code == 202, response.get_json()
    event_id: str = response.get_json()["event_id"]
    return event_id


def test_get_event_shows_routes_and_existing_execution_status(
    client: FlaskClient, clean_db: Engine
) -> None:
    event_id = send(client, "order.created", order())
    routes = client.get(f"/api/v1/events/{event_id}", headers=AUTH).get_json()["data"]["routes"]
    started = routes[0]
    with Session(clean_db) as session, session.begin():  # the engine created one execution
        session.add(
            Execution(
                id=started["execution_id"],
                event_id=event_id,
                workflow_id=started["workflow_id"],
                status="running",
                input=order(),
            )
        )

    response = client.get(f"/api/v1/events/{event_id}", headers=AUTH)

    assert response.status_code == 200
    event = response.get_json()["data"]
    assert (event["id"], event["name"], event["status"]) == (event_id, "order.created", "accepted")
    assert event["payload"] == order()
    assert {r["workflow_id"] for r in event["routes"]} == ORDER_CREATED_WORKFLOWS
    statuses = {r["execution_id"]: r["execution_status"] for r in event["routes"]}
    assert statuses[started["execution_id"]] == "running"
    assert list(statuses.values()).count(None) == 3
    assert event["received_at"].endswith("Z")


def test_get_unknown_event_is_404(client: FlaskClient, clean_db: Engine) -> None:
    response = client.get("/api/v1/events/evt_nope", headers=AUTH)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_list_filters_and_paginates_with_a_cursor(client: FlaskClient, clean_db: Engine) -> None:
    sent = [send(client, "order.created", order()) for _ in range(3)]
    sent += [send(client, "nobody.listens") for _ in range(2)]
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        data = client.get("/api/v1/events", query_string=query, headers=AUTH).get_json()["data"]
        seen += [e["id"] for e in data["events"]]
        cursor = data["next_cursor"]
        if cursor is None:
            break

    assert sorted(seen) == sorted(sent) and len(seen) == 5
    by_status = client.get("/api/v1/events?status=unrouted", headers=AUTH).get_json()["data"]
    assert {e["name"] for e in by_status["events"]} == {"nobody.listens"}
    by_name = client.get("/api/v1/events?name=order.created", headers=AUTH).get_json()["data"]
    assert len(by_name["events"]) == 3 and by_name["next_cursor"] is None
    future = client.get("/api/v1/events?since=2999-01-01T00:00:00Z", headers=AUTH).get_json()
    assert future["data"]["events"] == []
    past = client.get("/api/v1/events?until=2000-01-01T00:00:00%2B01:00", headers=AUTH)
    assert past.get_json()["data"]["events"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("status=lost", "status"),
        ("since=yesterday", "since"),
        ("until=2026-13-01", "until"),
        ("cursor=%%%", "cursor"),
        ("cursor=bm9wZQ", "cursor"),
        ("since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "since"),
        ("since=9999-12-31T23:59:59-01:00", "since"),
        ("until=0001-01-01T00:00:00%2B01:00", "until"),
        ("name=order%00created", "name"),
        ("colour=red", "colour"),
    ],
)
def test_list_refuses_bad_parameters(
    client: FlaskClient, clean_db: Engine, query: str, field: str
) -> None:
    response = client.get(f"/api/v1/events?{query}", headers=AUTH)
    assert response.status_code == 400
    assert response.get_json()["error"]["details"]["field"] == field


@pytest.mark.parametrize(
    "path", ["/api/v1/events", "/api/v1/events/evt_x", "/api/v1/workflows", "/api/v1/workflows/x"]
)
def test_reads_need_the_read_scope(
    make_app: Callable[..., Flask], test_token: ApiToken, clean_db: Engine, path: str
) -> None:
    writer = ApiToken("writer", "writer-token", scopes=frozenset({"events:write"}))
    client = make_app(api_tokens=(test_token, writer)).test_client()

    assert client.get(path).status_code == 401
    forbidden = client.get(path, headers={"Authorization": "Bearer writer-token"})
    assert forbidden.status_code == 403
    assert forbidden.get_json()["error"]["code"] == "forbidden"


def test_nul_in_the_path_is_400_not_a_server_error(client: FlaskClient) -> None:
    response = client.get("/api/v1/events/evt%00x", headers=AUTH)
    assert response.status_code == 400
    assert "NUL" in response.get_json()["error"]["message"]
