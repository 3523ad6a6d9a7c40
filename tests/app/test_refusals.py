"""401 and 429 are counted in memory and logged at a bounded rate, never a row each."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest
from flask import Flask
from sqlalchemy import Engine

from app.refusals import OTHERS, RefusalKey, Refusals
from tests.app.conftest import AUTH, rejections


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refused_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    """The ``api.refused`` log lines, as their fields."""
    return [
        {k: getattr(r, k) for k in ("status", "token_name", "client_addr", "count", "total")}
        for r in caplog.records
        if getattr(r, "kind", None) == "api.refused"
    ]


def test_one_line_per_key_per_interval_with_the_count_since(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    refusals = Refusals(log_every=60, clock=clock)
    caplog.set_level(logging.INFO, logger="herald")

    for _ in range(100):
        refusals.count(401, None, "10.0.0.1")
    clock.now += 30
    refusals.count(401, None, "10.0.0.1")  # still within the minute: counted, not logged
    clock.now += 31
    refusals.count(401, None, "10.0.0.1")
    refusals.count(429, "shop", "10.0.0.1")  # another key: its own line

    assert refused_lines(caplog) == [
        {"status": 401, "token_name": None, "client_addr": "10.0.0.1", "count": 1, "total": 1},
        {"status": 401, "token_name": None, "client_addr": "10.0.0.1", "count": 101, "total": 102},
        {"status": 429, "token_name": "shop", "client_addr": "10.0.0.1", "count": 1, "total": 1},
    ]
    snapshot = refusals.snapshot()
    assert snapshot.totals == {401: 102, 429: 1}
    assert snapshot.by_key[RefusalKey(401, None, "10.0.0.1")] == 102


def test_the_table_is_bounded_and_the_totals_stay_right() -> None:
    refusals = Refusals(max_keys=3)

    for n in range(1000):
        refusals.count(401, None, f"10.0.{n // 256}.{n % 256}")

    snapshot = refusals.snapshot()
    assert len(snapshot.by_key) == 4  # three addresses, then everyone else together
    assert snapshot.by_key[RefusalKey(401, OTHERS, OTHERS)] == 997
    assert snapshot.totals == {401: 1000}


def test_a_flood_of_bad_tokens_writes_no_row_and_logs_one_line(
    make_app: Callable[..., Flask], clean_db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    client = app.test_client()
    caplog.set_level(logging.INFO, logger="herald")
    wrong = {"Authorization": "Bearer wrong", "Content-Type": "application/json"}

    answers = [
        client.post("/api/v1/events", data=json.dumps({"name": "a.b"}), headers=wrong)
        for _ in range(50)
    ]
    reads = [client.get("/api/v1/events", headers=wrong) for _ in range(10)]

    assert {a.status_code for a in answers + reads} == {401}
    assert rejections(clean_db) == []  # was 50 rows, one transaction each
    assert refused_lines(caplog) == [
        {"status": 401, "token_name": None, "client_addr": "127.0.0.1", "count": 1, "total": 1}
    ]
    counts = app.extensions["herald"].refusals.snapshot()
    assert counts.by_key == {RefusalKey(401, None, "127.0.0.1"): 60}


def test_rate_limited_requests_write_no_row(
    make_app: Callable[..., Flask], clean_db: Engine
) -> None:
    app = make_app(rate_limit_per_second=1)
    client = app.test_client()

    statuses = [
        client.post("/api/v1/events", json={"name": "a.b"}, headers=AUTH).status_code
        for _ in range(20)
    ]

    assert statuses[0] == 202 and statuses.count(429) >= 18
    assert rejections(clean_db) == []
    counts = app.extensions["herald"].refusals.snapshot()
    assert counts.by_key[RefusalKey(429, "test", "127.0.0.1")] == statuses.count(429)


def test_other_refusals_are_still_audited(make_app: Callable[..., Flask], clean_db: Engine) -> None:
    client = make_app().test_client()
    response = client.post("/api/v1/events", json={"name": "nodots"}, headers=AUTH)
    assert response.status_code == 400
    [rejection] = rejections(clean_db)
    assert (rejection.status_code, rejection.token_name) == (400, "test")
