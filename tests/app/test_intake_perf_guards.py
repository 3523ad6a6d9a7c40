"""Structural guards on the ingestion hot path (what makes it fast, checked by counting).

Accepting an event must not compile a schema or load definitions, and must cost
the database one statement that is its own transaction, published only after it
returned. These hold whatever the machine's speed, so they are tested by counting,
not timing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema_rs
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from sqlalchemy import Engine, event, text

from tests.app.conftest import AUTH, order
from workflows import registry

#: the table a statement reads or writes
_TABLE = re.compile(r"\b(?:INTO|FROM|UPDATE)\s+(\w+)")


def post(client: FlaskClient, body: dict[str, Any], **headers: str) -> Any:
    """POST an event with the seed token."""
    return client.post("/api/v1/events", json=body, headers={**AUTH, **headers})


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every schema compiled and definitions loaded.

    A payload schema is compiled by jsonschema_rs (``payload schema``); Python's
    jsonschema compiles the definition formats' and tools' schemas (``schema``: a
    validator built with a fresh resolver).
    """
    seen: list[str] = []
    compile_payload = jsonschema_rs.Draft202012Validator

    def counting_compile(*args: Any, **kwargs: Any) -> jsonschema_rs.Validator:
        seen.append("payload schema")
        return compile_payload(*args, **kwargs)

    monkeypatch.setattr(jsonschema_rs, "Draft202012Validator", counting_compile)
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
    assert compiles.count("payload schema") >= 4
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
    group_commit = app.extensions["herald"].group_commit
    real_publish = group_commit.publish

    def traced_publish(dispatches: Any) -> None:
        db_trace.append("publish")
        real_publish(dispatches)

    monkeypatch.setattr(group_commit, "publish", traced_publish)

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


def test_checking_out_a_connection_costs_no_round_trip(
    app: Flask, client: FlaskClient, broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    dialect = app.extensions["herald"].engine.dialect
    pings: list[object] = []
    real_ping = dialect.do_ping

    def counting_ping(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return bool(real_ping(dbapi_connection))

    monkeypatch.setattr(dialect, "do_ping", counting_ping)

    for _ in range(3):
        assert post(client, {"name": "order.created", "payload": order()}).status_code == 202

    assert pings == []


def _terminate_other_connections(engine: Engine) -> None:
    """What a database restart does to the app's pooled connections; waits until they are gone."""
    others = (
        "SELECT pid FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    with engine.connect() as conn:
        pids = conn.execute(text(others)).scalars().all()
        assert pids, "the app holds no pooled connection to drop"
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM ({others}) AS o"))
        deadline = time.monotonic() + 10
        while conn.execute(text(others)).scalars().all():
            assert time.monotonic() < deadline, "the terminated connections did not end"
            conn.rollback()


def test_the_first_requests_after_the_database_dropped_its_connections_succeed(
    client: FlaskClient, clean_db: Engine, broker: redis.Redis
) -> None:
    first = post(client, {"name": "order.created", "payload": order()})
    assert first.status_code == 202
    _terminate_other_connections(clean_db)

    again = post(client, {"name": "order.created", "payload": order()})

    assert again.status_code == 202, again.get_json()
    _terminate_other_connections(clean_db)
    read = client.get(f"/api/v1/events/{first.get_json()['event_id']}", headers=AUTH)
    assert read.status_code == 200, read.get_json()
