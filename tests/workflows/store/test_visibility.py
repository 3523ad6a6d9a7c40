"""Who sees which events and executions, in SQL on Postgres and SQLite and in Python alike."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from workflows.ids import new_id
from workflows.store import db
from workflows.store.models import Event, Execution
from workflows.store.visibility import Visibility, name_regex

#: (token, event name) of the events each test stores
SENT = [
    ("shop", "order.created"),
    ("shop", "order.cancelled"),
    ("other", "order.created"),
    ("other", "user.created"),
    ("other", "Order.created"),  # another name: patterns are case-sensitive
]


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


@pytest.fixture
def stored(engine: Engine) -> Engine:
    with Session(engine) as session, session.begin():
        for token, name in SENT:
            event = Event(
                id=new_id("evt"),
                name=name,
                payload={},
                status="accepted",
                routes=[],
                token_name=token,
                received_at=datetime.now(UTC),
                publish_count=0,
            )
            session.add(event)
            session.flush()
            session.add(
                Execution(
                    id=new_id("exe"), event_id=event.id, workflow_id="w", status="running", input={}
                )
            )
    return engine


@pytest.mark.parametrize(
    ("seen", "expected"),
    [
        (
            Visibility("shop", False, ("*",)),
            {("shop", "order.created"), ("shop", "order.cancelled")},
        ),
        (Visibility("shop", False, ("order.c?eated",)), {("shop", "order.created")}),
        (
            Visibility("shop", True, ("order.*",)),
            {("shop", "order.created"), ("shop", "order.cancelled"), ("other", "order.created")},
        ),
        (Visibility("shop", True, ("user.*", "Order.*")), {("other", "user.created"), SENT[4]}),
        (Visibility("ops", True, ("*",)), set(SENT)),
        (Visibility("nobody", False, ("*",)), set()),
    ],
)
def test_sql_and_python_agree(
    stored: Engine, seen: Visibility, expected: set[tuple[str, str]]
) -> None:
    with Session(stored) as session:
        events = session.scalars(select(Event).where(seen.events_clause())).all()
        executions = session.scalars(select(Execution).where(seen.executions_clause())).all()
        every = session.scalars(select(Event)).all()
        assert {(e.token_name, e.name) for e in events} == expected
        assert {(e.token_name, e.name) for e in every if seen.allows(e)} == expected
        assert {x.event_id for x in executions} == {e.id for e in events}
        assert all(seen.allows_execution(session, x) for x in executions)


def test_patterns_are_anchored_and_dots_are_literal() -> None:
    assert name_regex("order.*") == "^order\\..*$"
    assert name_regex("a?b") == "^a.b$"
