"""One error envelope for every failure: ours, werkzeug's and the unexpected ones."""

from __future__ import annotations

import logging

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.app.conftest import AUTH


def test_unexpected_error_is_500_without_a_trace(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("the secret internals")

    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/boom")

    assert response.status_code == 500
    body = response.get_json()
    assert body == {
        "success": False,
        "error": {
            "code": "internal_error",
            "message": "an unexpected error occurred; it has been logged",
            "details": None,
        },
    }
    assert "the secret internals" in caplog.text  # logged server-side, not answered


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("get", "/api/v1/nothing-here", 404, "not_found"),
        ("delete", "/api/v1/events", 405, "method_not_allowed"),
        ("put", "/health", 405, "method_not_allowed"),
    ],
)
def test_http_errors_use_the_envelope(
    client: FlaskClient, method: str, path: str, status: int, code: str
) -> None:
    response = getattr(client, method)(path, headers=AUTH)
    assert response.status_code == status
    body = response.get_json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    if status == 405:
        assert "GET" in response.headers["Allow"]
