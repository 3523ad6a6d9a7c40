"""Group commit: concurrent requests share one INSERT, and nobody is answered before its commit.

The unit tests hold the first commit open until the other requests have queued,
so that they form a group of their own, then check what each request is told;
the last test posts concurrently to a real ``herald serve``.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.exc import OperationalError

from app.groupcommit import GroupCommit
from app.publish import Dispatching
from tests.app.conftest import closed_port
from tests.support import start_serve, wait_for
from workflows.ids import new_id
from workflows.model import EventStatus
from workflows.store import events as store
from workflows.store.db import normalize_url
from workflows.store.models import Event, utcnow

pytestmark = pytest.mark.integration

#: requests that queue behind the first commit
OTHERS = 5


def row(**changes: Any) -> dict[str, Any]:
    """The values of an event row as the API inserts them."""
    values: dict[str, Any] = {
        "id": new_id("evt"),
        "name": "order.created",
        "payload": {"orderId": "o-1"},
        "status": EventStatus.UNROUTED,
        "routes": [],
        "token_name": "test",
        "client_addr": "127.0.0.1",
        "request_id": new_id("req"),
        "idempotency_key": None,
        "request_hash": "0" * 64,
        "received_at": utcnow(),
        "publish_count": 0,
        "filtered": None,
        "trace_id": None,
    }
    values.update(changes)
    return values


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[GroupCommit], None]]:
    """``hold(group_commit)``: its first commit waits until :data:`OTHERS` rows have queued."""
    insert_event = store.insert_event
    waiting: list[GroupCommit] = []
    first = threading.Event()

    def slow_first(db: Any, values: Any) -> bool:
        if not first.is_set():
            first.set()
            committer = waiting[0]
            wait_for(f"{OTHERS} queued rows", lambda: len(committer._queue) == OTHERS, timeout=10)
        return insert_event(db, values)

    monkeypatch.setattr(store, "insert_event", slow_first)
    yield waiting.append


def concurrently(
    group_commit: GroupCommit,
    rows: list[dict[str, Any]],
    dispatches: list[Dispatching] | None = None,
) -> list[Any]:
    """Insert ``rows[0]`` first, then the others while its commit is held: each outcome."""
    each = dispatches or [None] * len(rows)

    def insert(values: dict[str, Any], dispatch: Dispatching | None) -> Any:
        try:
            return group_commit.insert(values, dispatch)
        except Exception as exc:  # the outcome under test
            return exc

    with ThreadPoolExecutor(len(rows)) as pool:
        first = pool.submit(insert, rows[0], each[0])
        wait_for("the first commit to start", lambda: group_commit._leading, timeout=10)
        others = [pool.submit(insert, v, d) for v, d in zip(rows[1:], each[1:], strict=True)]
        return [first.result(timeout=30)] + [f.result(timeout=30) for f in others]


def stored(engine: Engine, ids: list[str]) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).where(Event.id.in_(ids))).scalar_one())


def test_queued_rows_share_one_statement(
    clean_db: Engine, held: Callable[[GroupCommit], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    group_commit = GroupCommit(clean_db)
    held(group_commit)
    groups: list[int] = []
    insert_events = store.insert_events

    def counting(db: Any, rows: list[dict[str, Any]]) -> set[str]:
        groups.append(len(rows))
        return insert_events(db, rows)

    monkeypatch.setattr(store, "insert_events", counting)
    rows = [row() for _ in range(OTHERS + 1)]
    assert concurrently(group_commit, rows) == [True] * len(rows)
    assert groups == [OTHERS]  # the first row alone, then the others in one statement
    assert stored(clean_db, [r["id"] for r in rows]) == len(rows)


def test_a_taken_key_in_a_group_is_told_so(
    clean_db: Engine, held: Callable[[GroupCommit], None]
) -> None:
    group_commit = GroupCommit(clean_db)
    held(group_commit)
    rows = [row()] + [row(idempotency_key="same") for _ in range(OTHERS)]
    outcomes = concurrently(group_commit, rows)
    assert outcomes[0] is True
    assert sorted(outcomes[1:]) == [False] * (OTHERS - 1) + [True]  # one row per key
    assert stored(clean_db, [r["id"] for r in rows]) == 2


def test_a_group_publishes_the_dispatches_of_its_inserted_rows_at_once(
    clean_db: Engine, held: Callable[[GroupCommit], None]
) -> None:
    published: list[list[str]] = []
    group_commit = GroupCommit(clean_db, lambda ds: published.append([d.event_id for d in ds]))
    held(group_commit)
    rows = [row()] + [row(idempotency_key="same") for _ in range(2)]
    rows += [row() for _ in range(OTHERS - 2)]
    dispatches = [Dispatching(r["id"], r["request_id"]) for r in rows]
    outcomes = concurrently(group_commit, rows, dispatches)
    inserted = [r["id"] for r, ok in zip(rows, outcomes, strict=True) if ok is True]
    assert len(inserted) == len(rows) - 1  # one of the two rows with the same key
    # the first alone, then one publish for the group: the rows it inserted
    assert published[0] == [inserted[0]]
    assert len(published) == 2
    assert sorted(published[1]) == sorted(inserted[1:])


def test_a_failed_commit_fails_every_request_of_its_group(
    clean_db: Engine, held: Callable[[GroupCommit], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    group_commit = GroupCommit(clean_db)
    held(group_commit)

    def outage(db: Any, rows: Any) -> set[str]:
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(store, "insert_events", outage)
    rows = [row() for _ in range(OTHERS + 1)]
    outcomes = concurrently(group_commit, rows)
    assert outcomes[0] is True
    assert all(isinstance(o, OperationalError) for o in outcomes[1:]), outcomes
    assert stored(clean_db, [r["id"] for r in rows[1:]]) == 0


def test_a_refused_row_fails_only_its_own_request(
    clean_db: Engine, held: Callable[[GroupCommit], None]
) -> None:
    group_commit = GroupCommit(clean_db)
    held(group_commit)
    rows = [row() for _ in range(OTHERS + 1)]
    rows[2]["name"] = "x." + "y" * 300  # longer than the column: the statement is refused
    outcomes = concurrently(group_commit, rows)
    assert [o is True for o in outcomes] == [i != 2 for i in range(len(rows))]
    assert not isinstance(outcomes[2], OperationalError)
    assert stored(clean_db, [r["id"] for r in rows]) == len(rows) - 1


def test_an_unreachable_database_fails_every_request() -> None:
    engine = create_engine(
        normalize_url(f"postgresql://postgres@127.0.0.1:{closed_port()}/none"),
        connect_args={"connect_timeout": 2},
    )
    group_commit = GroupCommit(engine)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(group_commit.insert, row()) for _ in range(8)]
        for future in futures:
            with pytest.raises(OperationalError):
                future.result(timeout=30)
    engine.dispose()


def test_concurrent_posts_to_a_real_server_are_each_committed_before_their_202(
    seed_dir: Path, pg_url: str, redis_url: str, queue_prefix: str, tmp_path: Path, clean_db: Engine
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        HERALD_PROJECT_DIR=str(seed_dir),
        HERALD_DATABASE_URL=pg_url,
        HERALD_API_TOKENS="test:group-token",
        HERALD_BROKER_URL=redis_url,
        HERALD_QUEUE_PREFIX=queue_prefix,
    )
    process, url = start_serve(env, tmp_path / "serve.log")
    try:
        bodies = [
            json.dumps({"name": "user.signup", "payload": {"n": n}}).encode() for n in range(64)
        ]

        def post(body: bytes) -> tuple[int, str]:
            request = urllib.request.Request(
                url + "/api/v1/events",
                data=body,
                headers={
                    "Authorization": "Bearer group-token",
                    "Content-Type": "application/json",
                },
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                event_id = json.loads(response.read())["event_id"]
                # the 202 is here: its row must be committed already
                assert stored(clean_db, [event_id]) == 1
                return response.status, event_id

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(post, bodies))
    finally:
        process.terminate()
        process.wait(timeout=15)
    assert [status for status, _ in answers] == [202] * len(bodies)
    assert stored(clean_db, [event_id for _, event_id in answers]) == len(bodies)
