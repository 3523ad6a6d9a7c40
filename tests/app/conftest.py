"""Fixtures for the API tests: an app on the run's Postgres and Redis, a client, helpers."""

from __future__ import annotations

import copy
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select

from app import create_app
from tests.support import SEED_ORDER
from workflows.settings import ApiToken, Settings
from workflows.store.models import Event, Rejection

#: every workflow of the seed fixture subscribed to order.created
ORDER_CREATED_WORKFLOWS = {
    "ecommerce-order-flow",
    "inventory-updater",
    "notification-sender",
    "order-processor",
}

AUTH = {"Authorization": "Bearer test-token"}


def order() -> dict[str, Any]:
    """A fresh copy of the seed's order payload."""
    return copy.deepcopy(SEED_ORDER)


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def api_settings(
    seed_dir: Path, pg_url: str, redis_url: str, queue_prefix: str, test_token: ApiToken
) -> Settings:
    """Settings on the seed project, the run's Postgres and Redis, and the seed's token."""
    return Settings(
        project_dir=seed_dir,
        database_url=pg_url,
        broker_url=redis_url,
        queue_prefix=queue_prefix,
        api_tokens=(test_token,),
    )


@pytest.fixture
def make_app(api_settings: Settings, clean_db: Engine) -> Iterator[Callable[..., Flask]]:
    """Build apps on ``api_settings`` with some fields changed; their engines closed after."""
    apps: list[Flask] = []

    def make(**changes: Any) -> Flask:
        app = create_app(api_settings.with_(**changes))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["herald"].engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The API on the seed project."""
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of :func:`app`."""
    return app.test_client()


@pytest.fixture
def broker(redis_url: str, queue_prefix: str) -> Iterator[redis.Redis]:
    """The Redis broker, with this test's queues deleted afterwards."""
    conn = redis.Redis.from_url(redis_url)
    yield conn
    keys = conn.keys(f"*{queue_prefix}*")
    if keys:
        conn.delete(*keys)
    conn.close()


def count_events(engine: Engine, **where: Any) -> int:
    """How many event rows match ``where``."""
    query = select(func.count()).select_from(Event).filter_by(**where)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def rejections(engine: Engine) -> list[Rejection]:
    """Every rejection row, oldest first."""
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        return list(session.scalars(select(Rejection).order_by(Rejection.id)))
