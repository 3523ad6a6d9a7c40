"""The events store on real Postgres (and the same writes on SQLite, as `herald dev` uses)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from workflows.ids import new_id
from workflows.store import db
from workflows.store import events as store
from workflows.store.models import Event, Execution


def values(**changes: Any) -> dict[str, Any]:
    """An event row's values."""
    return {
        "id": new_id("evt"),
        "name": "order.created",
        "payload": {"orderId": "o_1"},
        "status": "accepted",
        "routes": [],
        "token_name": "test",
        "idempotency_key": None,
        "request_hash": "h1",
        "received_at": datetime.now(UTC),
        **changes,
    }


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """Postgres (the run's database, emptied after) and a migrated SQLite file."""
    if request.param == "postgresql":
        yield request.getfixturevalue("clean_db")
        return
    url = f"sqlite:///{tmp_path / 'herald.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    yield engine
    engine.dispose()


def test_insert_is_ignored_on_a_taken_key(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        assert store.insert_event(session, values(idempotency_key="k"))
        assert not store.insert_event(session, values(idempotency_key="k"))
        assert store.insert_event(session, values(idempotency_key="k", token_name="other"))
        assert store.insert_event(session, values())  # no key: never a conflict
        assert store.insert_event(session, values())
    with Session(engine) as session:
        found = store.find_by_idempotency_key(session, "test", "k")
        assert found is not None and found.request_hash == "h1"
        assert store.find_by_idempotency_key(session, "test", "absent") is None


def test_release_frees_the_key_once(engine: Engine) -> None:
    first = values(idempotency_key="k")
    with Session(engine) as session, session.begin():
        store.insert_event(session, first)
        assert store.release_idempotency_key(session, first["id"], "k")
        assert not store.release_idempotency_key(session, first["id"], "k")
        assert store.insert_event(session, values(idempotency_key="k"))
    with Session(engine) as session:
        old = store.get_event(session, first["id"])
        assert old is not None and old.idempotency_key is None


def test_list_filters_and_pages_newest_first(engine: Engine) -> None:
    now = datetime.now(UTC)
    rows = [
        values(name="order.created", received_at=now - timedelta(hours=3)),
        values(name="order.created", received_at=now - timedelta(hours=2), status="unrouted"),
        values(name="user.created", received_at=now - timedelta(hours=1)),
    ]
    # ids sort by millisecond; within one they are random, so order them here
    for row, event_id in zip(rows, sorted(new_id("evt") for _ in rows), strict=True):
        row["id"] = event_id
    with Session(engine) as session, session.begin():
        for row in rows:
            store.insert_event(session, row)
    ids = [r["id"] for r in rows]

    def listed(limit: int = 10, **where: Any) -> list[str]:
        with Session(engine) as session:
            found = store.list_events(session, store.EventFilter(**where), limit)
            return [e.id for e in found]

    assert listed() == ids[::-1]
    assert listed(name="order.created") == [ids[1], ids[0]]
    assert listed(status="unrouted") == [ids[1]]
    assert listed(since=now - timedelta(minutes=90)) == [ids[2]]
    assert listed(until=now - timedelta(minutes=90)) == [ids[1], ids[0]]
    assert listed(limit=1) == [ids[2]]
    assert listed(before_id=ids[2]) == [ids[1], ids[0]]


def test_rejection_is_recorded(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        rejection = store.record_rejection(
            session,
            status_code=422,
            code="schema_validation_failed",
            message="bad",
            details=[{"workflow_id": "w", "errors": []}],
            event_name="order.created",
            token_name="test",
            client_addr="127.0.0.1",
            request_id="req_1",
        )
        assert rejection.id is not None
        assert rejection.details == [{"workflow_id": "w", "errors": []}]


def test_execution_statuses_of_existing_rows(engine: Engine) -> None:
    event = values()
    with Session(engine) as session, session.begin():
        store.insert_event(session, event)
        session.add(
            Execution(id="exe_1", event_id=event["id"], workflow_id="w", status="running", input={})
        )
    with Session(engine) as session:
        assert store.execution_statuses(session, ["exe_1", "exe_planned"]) == {"exe_1": "running"}
        assert store.execution_statuses(session, []) == {}


def test_as_utc_handles_naive_sqlite_times() -> None:
    naive = datetime(2026, 1, 1, 12, 0)
    assert store.as_utc(naive) == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_insert_events_writes_every_row_once_and_skips_a_taken_key(
    backend: str, clean_db: Engine, tmp_path: Path
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'h.db'}"
        db.upgrade(url)
        engine = db.make_engine(url)
    else:
        engine = clean_db

    def row(key: str | None) -> dict[str, Any]:
        return {
            "id": new_id("evt"),
            "name": "order.created",
            "payload": {"n": 1, "text": 'é "q" \\ x'},
            "status": "accepted",
            "routes": [{"workflow_id": "w", "version": "", "execution_id": new_id("exe")}],
            "token_name": "t",
            "idempotency_key": key,
            "received_at": datetime.now(UTC),
            "publish_count": 1,
        }

    first = [row("a"), row(None), row(None)]
    with engine.begin() as conn:
        assert store.insert_events(conn, first) == {r["id"] for r in first}
    again = [row("a"), row("b")]
    with engine.begin() as conn:
        assert store.insert_events(conn, again) == {again[1]["id"]}
    with Session(engine) as session:
        stored = session.get(Event, first[0]["id"])
        assert stored is not None and stored.payload == {"n": 1, "text": 'é "q" \\ x'}
        assert stored.routes == first[0]["routes"] and stored.publish_count == 1
        assert store.as_utc(stored.received_at) == first[0]["received_at"]
