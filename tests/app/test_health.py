"""GET /health: each dependency's state; 503 only when the database is down."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from tests.app.conftest import closed_port


def test_healthy(make_app: Callable[..., Flask]) -> None:
    response = make_app().test_client().get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_database_down_is_503(make_app: Callable[..., Flask]) -> None:
    app = make_app(database_url=f"postgresql://postgres@127.0.0.1:{closed_port()}/x")
    response = app.test_client().get("/health")
    assert response.status_code == 503
    assert response.get_json()["database"] == "unavailable"


def test_broker_down_is_reported_but_200(make_app: Callable[..., Flask]) -> None:
    app = make_app(broker_url=f"redis://127.0.0.1:{closed_port()}/0")
    response = app.test_client().get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "degraded", "database": "ok", "broker": "unavailable"}
