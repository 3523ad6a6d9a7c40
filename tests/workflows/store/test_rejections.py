"""Pruning rejections past their TTL, on real Postgres and on SQLite (`herald dev`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from workflows.store import db
from workflows.store.models import Rejection
from workflows.store.rejections import prune_rejections

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(days=7)
#: what the pruning leaves of the ages the first test records
RECENT = ["6.9 days old", "1 days old", "0 days old"]


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


def record(engine: Engine, *ages_in_days: float) -> None:
    """One rejection per age, recorded that many days before NOW."""
    with Session(engine) as session, session.begin():
        for age in ages_in_days:
            session.add(
                Rejection(
                    at=NOW - timedelta(days=age),
                    status_code=422,
                    code="schema_validation_failed",
                    message=f"{age} days old",
                )
            )


def kept(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.scalars(select(Rejection.message).order_by(Rejection.at)))


def test_prunes_what_is_past_the_ttl_oldest_first_in_batches(engine: Engine) -> None:
    record(engine, 8, 30, 7.5, 10, 9, 6.9, 1, 0)

    with Session(engine) as session, session.begin():
        first = prune_rejections(session, before=NOW - TTL, limit=2)
    assert first == 2
    assert kept(engine) == ["9 days old", "8 days old", "7.5 days old", *RECENT]

    counts = []
    while True:
        with Session(engine) as session, session.begin():
            counts.append(prune_rejections(session, before=NOW - TTL, limit=2))
        if counts[-1] < 2:
            break
    assert counts == [2, 1]
    assert kept(engine) == RECENT


def test_nothing_to_prune(engine: Engine) -> None:
    record(engine, 1)
    with Session(engine) as session, session.begin():
        assert prune_rejections(session, before=NOW - TTL, limit=100) == 0
        assert prune_rejections(session, before=NOW, limit=0) == 0
    assert kept(engine) == ["1 days old"]


def test_two_pruners_at_once_neither_wait_nor_overlap(clean_db: Engine) -> None:
    record(clean_db, *range(8, 14))
    with Session(clean_db) as one, Session(clean_db) as two, one.begin():
        first = prune_rejections(one, before=NOW - TTL, limit=4)  # holds its 4 rows
        with two.begin():
            # a pruner that had to wait for the first would fail here, not hang
            two.execute(text("SET LOCAL lock_timeout = '2s'"))
            second = prune_rejections(two, before=NOW - TTL, limit=4)
    assert (first, second) == (4, 2)
    assert kept(clean_db) == []
