"""Hostile traffic with two tenants: thousands of generated requests over every endpoint.

Two tokens each send events (a secret marker in every payload) whose executions
run in-process; then schemathesis generates requests, valid and invalid, for
every operation of the OpenAPI document, as each token in turn, and a
hypothesis strategy posts hostile raw bodies. Every answer must be no 5xx,
within its size bound, and free of the other token's data.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from sqlalchemy import Engine

from tests.app.test_openapi import implemented
from tests.workers.conftest import ENGINE_DIR, RecordingCelery, accept
from workers import tasks
from workers.runtime import Runtime
from workflows.loading.loader import load_project
from workflows.settings import ApiToken
from workflows.store import db

#: requests the schemathesis run makes at least, over every operation and both tokens
REQUESTS = 5_000
#: hostile bodies posted by the hypothesis run
HOSTILE = 600
MAX_BODY = 16 * 1024
#: an error answer is short whatever was sent
MAX_ERROR_ANSWER = 16 * 1024
#: a page holds at most 200 items, each at most one accepted body (and its execution's copy)
MAX_PAGE_ANSWER = 200 * 3 * MAX_BODY

SCOPES = frozenset(
    {"events:write", "events:read", "executions:read", "executions:write", "workflows:read"}
)
ALICE = ApiToken("alice", "alice-secret", SCOPES, ("engine.*",))
BOB = ApiToken("bob", "bob-secret", SCOPES, ("engine.*",))
MARKERS = {"alice": "alice-private-7c1f", "bob": "bob-private-93ad"}


@pytest.fixture
def tenants(make_app: Callable[..., Flask], clean_db: Engine, broker: Any) -> Flask:
    """The API on the engine project with two tokens, each with finished and pending work."""
    app = make_app(project_dir=ENGINE_DIR, api_tokens=(ALICE, BOB), max_body_bytes=MAX_BODY)
    state = app.extensions["herald"]
    rt = Runtime(
        settings=state.settings,
        project=load_project(ENGINE_DIR),
        engine=state.engine,
        sessions=db.make_sessionmaker(state.engine),
        celery=RecordingCelery(),  # type: ignore[arg-type]
    )
    client = app.test_client()
    for token in (ALICE, BOB):
        for name in ("engine.chain", "engine.fail"):
            answer = client.post(
                "/api/v1/events",
                json={"name": name, "payload": {"value": 1, "note": MARKERS[token.name]}},
                headers={"Authorization": f"Bearer {token.secret}"},
            )
            assert answer.status_code == 202, answer.get_json()
    sent = rt.celery.sent  # type: ignore[attr-defined]
    for event_id in [e for e in _event_ids(app)]:
        tasks.dispatch(rt, event_id)
    while sent:
        tasks.run_step(rt, sent.pop(0).args[0], worker="fuzz")
    # and one event each left accepted (planned executions, not dispatched)
    from sqlalchemy import update

    from workflows.store.models import Event

    for token in (ALICE, BOB):
        event_id, _ = accept(rt.sessions, rt.project, "engine.chain", {"note": MARKERS[token.name]})
        with rt.sessions.begin() as session:
            session.execute(update(Event).where(Event.id == event_id).values(token_name=token.name))
    return app


def _event_ids(app: Flask) -> list[str]:
    from sqlalchemy import select

    from workflows.store.models import Event

    with app.extensions["herald"].sessions() as session:
        return list(session.scalars(select(Event.id)))


def _check(token: ApiToken, status: int, body: bytes) -> None:
    """What every answer to ``token`` must be: no 5xx, bounded, nothing of the other tenant."""
    assert status < 500, (status, body[:500])
    bound = MAX_ERROR_ANSWER if status >= 400 else MAX_PAGE_ANSWER
    assert len(body) <= bound, (status, len(body))
    other = MARKERS["bob" if token is ALICE else "alice"]
    assert other.encode() not in body, (status, body[:500])


def test_thousands_of_generated_requests_from_two_tenants_break_nothing(tenants: Flask) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", tenants)
    operations = [
        op.ok()
        for op in schema.get_all_operations()
        if implemented(tenants.url_map, op.ok().path, op.ok().method)
    ]
    assert len(operations) >= 9
    # each token, positive and negative; GET /health has nothing to vary
    rounds = (len(operations) - 1) * 2 * 2
    examples = math.ceil(REQUESTS / rounds) + 10
    calls: Counter[str] = Counter()
    for token in (ALICE, BOB):
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for operation in operations:
                try:
                    _fuzz(operation, mode, token, examples, calls)
                except Unsatisfiable:
                    assert mode is GenerationMode.NEGATIVE  # nothing to negate
    print(f"\nfuzz: {sum(calls.values())} requests over {len(calls)} operations: {dict(calls)}")
    assert sum(calls.values()) >= REQUESTS
    assert len(calls) == len(operations)


def _fuzz(
    operation: Any, mode: GenerationMode, token: ApiToken, examples: int, calls: Counter[str]
) -> None:
    """Run ``examples`` generated requests of ``operation`` as ``token``, checking each answer."""
    auth = {"Authorization": f"Bearer {token.secret}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        response = case.call(headers={**(case.headers or {}), **auth})
        calls[f"{case.method} {case.path}"] += 1
        _check(token, response.status_code, response.content)

    run()


def test_each_tenant_reads_and_acts_on_its_own_work_only(tenants: Flask) -> None:
    client = tenants.test_client()
    seen: dict[str, dict[str, list[str]]] = {}
    for token in (ALICE, BOB):
        auth = {"Authorization": f"Bearer {token.secret}"}
        events = client.get("/api/v1/events?limit=200", headers=auth)
        executions = client.get("/api/v1/executions?limit=200", headers=auth)
        for answer in (events, executions):
            assert answer.status_code == 200
            _check(token, answer.status_code, answer.data)
        seen[token.name] = {
            "events": [e["id"] for e in events.get_json()["data"]["events"]],
            "executions": [e["id"] for e in executions.get_json()["data"]["executions"]],
        }
        assert len(seen[token.name]["events"]) == 3  # two dispatched, one still accepted
        assert len(seen[token.name]["executions"]) >= 2
    for token, other in ((ALICE, "bob"), (BOB, "alice")):
        auth = {"Authorization": f"Bearer {token.secret}"}
        for event_id in seen[other]["events"]:
            answer = client.get(f"/api/v1/events/{event_id}", headers=auth)
            assert answer.status_code == 404
            _check(token, answer.status_code, answer.data)
        for execution_id in seen[other]["executions"]:
            for method, path in (
                ("GET", f"/api/v1/executions/{execution_id}"),
                ("POST", f"/api/v1/executions/{execution_id}/cancel"),
                ("POST", f"/api/v1/executions/{execution_id}/retry"),
            ):
                answer = client.open(path, method=method, headers=auth)
                assert answer.status_code == 404, (method, path)
                _check(token, answer.status_code, answer.data)


#: JSON values built to hurt: deep nesting, wide arrays, odd strings and numbers
_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["\x00", "\ud800", "\udfff", "\u202e", "a" * 5000, "%s%n", "${jndi:x}"]),
)
_values = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=8), st.dictionaries(st.text(max_size=12), inner, max_size=8)
    ),
    max_leaves=60,
)


def _deep(depth: int, leaf: str) -> str:
    return '{"a":' * depth + leaf + "}" * depth


_raw_bodies = st.one_of(
    _values.map(lambda v: json.dumps({"name": "engine.chain", "payload": v})),
    _values.map(lambda v: json.dumps(v)),
    st.tuples(st.integers(1, 3000), st.sampled_from(['"\\u0000"', '"\\ud800"', "1", "[]"])).map(
        lambda t: '{"name":"engine.chain","payload":' + _deep(*t) + "}"
    ),
    st.integers(1, 20000).map(
        lambda n: '{"name":"engine.chain","payload":{"items":[' + ",".join(["{}"] * n) + "]}}"
    ),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.text(max_size=200),
)


def test_hostile_raw_bodies_get_a_bounded_client_error_or_are_accepted(tenants: Flask) -> None:
    client = tenants.test_client()
    statuses: Counter[int] = Counter()

    @given(body=_raw_bodies, content_type=st.sampled_from(["application/json", "text/plain"]))
    @settings(
        max_examples=HOSTILE,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(body: str, content_type: str) -> None:
        answer = client.post(
            "/api/v1/events",
            data=body.encode("utf-8", "surrogatepass"),
            headers={"Authorization": f"Bearer {ALICE.secret}", "Content-Type": content_type},
        )
        statuses[answer.status_code] += 1
        assert answer.status_code in {202, 400, 413, 415, 422}, (answer.status_code, body[:200])
        _check(ALICE, answer.status_code, answer.data)

    run()
    print(f"\nhostile bodies: {dict(statuses)}")
    assert statuses[400] and statuses[202]
