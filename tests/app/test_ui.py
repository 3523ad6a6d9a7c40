"""The dashboard's login, session cookie and CSRF, through Flask's test client."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.app.conftest import AUTH, order
from workflows.settings import ApiToken

READER = ApiToken(
    name="reader",
    secret="reader-secret",
    scopes=frozenset({"events:read:all", "executions:read:all"}),
)


@pytest.fixture
def ui_app(make_app: Callable[..., Flask], test_token: ApiToken) -> Flask:
    """The API with the seed's token (every scope) and a read-only one."""
    return make_app(api_tokens=(test_token, READER))


def csrf(client: FlaskClient, path: str = "/ui/login") -> str:
    """The CSRF token of the form on ``path``."""
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def log_in(client: FlaskClient, secret: str) -> None:
    answer = client.post("/ui/login", data={"token": secret, "csrf": csrf(client)})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    assert answer.headers["Location"].endswith("/ui/events")


def test_login_keeps_the_token_in_a_strict_httponly_cookie_not_the_url(ui_app: Flask) -> None:
    client = ui_app.test_client()
    assert client.get("/ui/events").headers["Location"].endswith("/ui/login")
    answer = client.post(
        "/ui/login", data={"token": "test-token", "csrf": csrf(client)}, follow_redirects=False
    )
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain http here; https gets Secure
    assert "test-token" not in answer.headers["Location"]
    page = client.get("/ui/events")
    assert page.status_code == 200
    assert "token <code>test</code>" in page.get_data(as_text=True).replace("\n", "")


def test_the_cookie_keeps_a_reference_to_the_token_never_its_secret(ui_app: Flask) -> None:
    client = ui_app.test_client()
    log_in(client, "test-token")
    cookie = client.get_cookie("session", path="/ui")
    assert cookie is not None
    stored = ui_app.session_interface.get_signing_serializer(ui_app).loads(cookie.value)  # type: ignore[attr-defined]
    assert stored["login"]["name"] == "test"
    assert "test-token" not in repr(stored) and "test-token" not in cookie.value


def test_a_session_whose_seal_does_not_match_the_token_is_logged_out(ui_app: Flask) -> None:
    client = ui_app.test_client()
    log_in(client, "test-token")
    with client.session_transaction(path="/ui") as session:
        session["login"] = {"name": "test", "seal": "0" * 64}  # e.g. the token was rotated
    assert client.get("/ui/events").headers["Location"].endswith("/ui/login")


def test_the_cookie_is_secure_over_https(ui_app: Flask) -> None:
    client = ui_app.test_client()
    token = csrf(client)
    answer = client.post(
        "/ui/login", data={"token": "test-token", "csrf": token}, base_url="https://localhost"
    )
    assert "Secure" in answer.headers["Set-Cookie"]


def test_a_bad_token_is_refused_with_a_message(ui_app: Flask) -> None:
    client = ui_app.test_client()
    answer = client.post("/ui/login", data={"token": "wrong", "csrf": csrf(client)})
    assert answer.status_code == 401
    assert "That token is not valid." in answer.get_data(as_text=True)
    assert client.get("/ui/events").status_code == 302


def test_the_session_cookie_does_not_authenticate_the_api(ui_app: Flask) -> None:
    client = ui_app.test_client()
    log_in(client, "test-token")
    assert client.get("/ui/events").status_code == 200
    answer = client.get("/api/v1/events")
    assert answer.status_code == 401
    assert answer.get_json()["error"]["code"] == "unauthorized"


def test_a_post_without_the_csrf_token_is_refused(ui_app: Flask) -> None:
    client = ui_app.test_client()
    assert client.post("/ui/login", data={"token": "test-token"}).status_code == 400
    log_in(client, "test-token")
    assert client.post("/ui/logout", data={"csrf": "forged"}).status_code == 400
    assert client.get("/ui/events").status_code == 200  # still logged in
    token = csrf(client, "/ui/events")
    assert client.post("/ui/logout", data={"csrf": token}).status_code == 302
    assert client.get("/ui/events").status_code == 302


def test_a_read_only_token_sees_the_event_but_no_buttons(ui_app: Flask, broker: object) -> None:
    api = ui_app.test_client()
    sent = api.post(
        "/api/v1/events", json={"name": "order.created", "payload": order()}, headers=AUTH
    )
    assert sent.status_code == 202
    event_id = sent.get_json()["event_id"]
    client = ui_app.test_client()
    log_in(client, "reader-secret")
    page = client.get(f"/ui/events/{event_id}").get_data(as_text=True)
    assert "order.created" in page and "&#34;orderId&#34;" in page
    assert "This token cannot replay events" in page
    assert 'name="replay"' not in page
    shown = client.get(f"/api/v1/events/{event_id}", headers=AUTH).get_json()
    execution_id = shown["data"]["routes"][0]["execution_id"]
    timeline = client.get(f"/ui/executions/{execution_id}").get_data(as_text=True)
    assert "This token cannot cancel or retry executions" in timeline
    assert 'name="cancel"' not in timeline
    refused = client.post(
        f"/ui/executions/{execution_id}/cancel", data={"csrf": csrf(client, "/ui/events")}
    )
    assert refused.status_code == 302
    assert "lacks the scope" in client.get(refused.headers["Location"]).get_data(as_text=True)
    workflows = client.get("/ui/workflows")
    assert workflows.status_code == 403
    assert "This token cannot read workflows" in workflows.get_data(as_text=True)
