"""Structural guards on the ingestion hot path (what makes it fast, checked by counting).

Accepting an event must not compile a schema or load definitions, and must cost
the database one statement that is its own transaction, published only after it
returned. These hold whatever the machine's speed, so they are tested by counting,
not timing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from sqlalchemy import event

from tests.app.conftest import AUTH, order
from workflows import registry

#: the table a statement reads or writes
_TABLE = re.compile(r"\b(?:INTO|FROM|UPDATE)\s+(\w+)")


def post(client: FlaskClient, body: dict[str, Any], **headers: str) -> Any:
    """POST an event with the seed token."""
    return client.post("/api/v1/events", json=body, headers={**AUTH, **headers})


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every schema compiled (a validator built with a fresh resolver) and definitions loaded."""
    seen: list[str] = []
    post_init = Draft202012Validator.__attrs_post_init__

    def counting_post_init(self: Draft202012Validator) -> None:
        if self._resolver is None:  # evolve() (descending into a subschema) reuses the resolver
            seen.append("schema")
        post_init(self)

    monkeypatch.setattr(Draft202012Validator, "__attrs_post_init__", counting_post_init)
    load = registry.Definitions.load.__func__  # type: ignore[attr-defined]

    def counting_load(cls: type[registry.Definitions], *args: Any) -> registry.Definitions:
        seen.append("definitions")
        return load(cls, *args)  # type: ignore[no-any-return]

    monkeypatch.setattr(registry.Definitions, "load", classmethod(counting_load))
    return seen


def test_accepting_events_compiles_no_schema_and_loads_nothing(
    make_app: Callable[..., Flask], compiles: list[str], broker: redis.Redis
) -> None:
    client = make_app().test_client()
    # the guard sees what building the app does: four order.created schemas, one load
    assert compiles.count("definitions") == 1
    assert compiles.count("schema") >= 4
    compiles.clear()

    for n in range(5):
        assert post(client, {"name": "order.created", "payload": order()}).status_code == 202
        invalid = {"name": "order.created", "payload": {"orderId": n}}
        assert post(client, invalid).status_code == 422

    assert compiles == []


@pytest.fixture
def db_trace(app: Flask) -> Iterator[list[str]]:
    """What the app's engine does, in order: each statement (with its transaction mode), commits."""
    trace: list[str] = []
    engine = app.extensions["herald"].engine

    def after_execute(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        mode = "autocommit" if cursor.connection.autocommit else "in transaction"
        verb = statement.split(None, 1)[0]
        table = _TABLE.search(statement)
        trace.append(f"{verb} {table.group(1) if table else '?'} [{mode}]")

    def commit(conn: Any) -> None:
        trace.append("COMMIT")

    event.listen(engine, "after_cursor_execute", after_execute)
    event.listen(engine, "commit", commit)
    yield trace
    event.remove(engine, "after_cursor_execute", after_execute)
    event.remove(engine, "commit", commit)


def test_an_accepted_event_is_one_statement_committed_before_its_publish(
    app: Flask,
    client: FlaskClient,
    db_trace: list[str],
    broker: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publisher = app.extensions["herald"].publisher
    real_dispatch = publisher.dispatch

    def traced_dispatch(event_id: str, **kwargs: Any) -> bool:
        db_trace.append("publish")
        return bool(real_dispatch(event_id, **kwargs))

    monkeypatch.setattr(publisher, "dispatch", traced_dispatch)

    for _ in range(3):
        assert post(client, {"name": "order.created", "payload": order()}).status_code == 202

    # the INSERT is its own transaction: committed when it returns, before the publish
    assert db_trace == ["INSERT events [autocommit]", "publish"] * 3


def test_a_replay_writes_nothing_and_publishes_nothing(
    app: Flask,
    client: FlaskClient,
    db_trace: list[str],
    broker: redis.Redis,
    queue_prefix: str,
) -> None:
    body = {"name": "order.created", "payload": order(), "id": "guard-key"}
    assert post(client, body).status_code == 202
    db_trace.clear()

    replay = post(client, body)

    assert replay.status_code == 202
    assert replay.get_json()["data"]["duplicate"] is True
    # the insert finds the key taken and the original is read back in one transaction
    assert db_trace == [
        "INSERT events [autocommit]",
        "INSERT events [in transaction]",
        "SELECT events [in transaction]",
        "COMMIT",
    ]
    assert broker.llen(f"{queue_prefix}.dispatch") == 1
