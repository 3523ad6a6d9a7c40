"""The OpenAPI document: a valid 3.1 document that matches what the endpoints really answer.

Real answers are validated with jsonschema against the document's own schemas, and
a bounded schemathesis run fuzzes every implemented operation from the document:
no 5xx, and no status, content type or body that the document does not describe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine
from werkzeug.routing import Map

from app.openapi import build_document, document
from tests.app.conftest import AUTH, order

FUZZ_EXAMPLES = 25


def test_document_is_valid_openapi_31(client: FlaskClient) -> None:
    served = client.get("/api/v1/openapi.json").get_json()

    validate(served)
    assert served["openapi"] == "3.1.0"
    assert served == document()
    for path in (
        "/api/v1/executions",
        "/api/v1/executions/{execution_id}",
        "/api/v1/executions/{execution_id}/cancel",
        "/api/v1/executions/{execution_id}/retry",
    ):
        assert path in served["paths"]


def test_a_module_can_describe_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    import app.api.executions as executions

    own = {
        "paths": {"/api/v1/executions/mine": {"get": {"responses": {"200": {"description": "x"}}}}}
    }
    monkeypatch.setattr(executions, "OPENAPI", own, raising=False)

    built = build_document()

    assert "/api/v1/executions/mine" in built["paths"]
    assert "/api/v1/executions" not in built["paths"]


def validator(name: str) -> Draft202012Validator:
    """A validator for the document's component schema ``name``."""
    doc = document()
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", **doc})


def assert_matches(name: str, body: Any) -> None:
    """``body`` satisfies the document's schema ``name``."""
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator(name).iter_errors(body)]
    assert not errors, errors


def test_real_answers_match_the_schemas(client: FlaskClient, clean_db: Engine) -> None:
    accepted = client.post(
        "/api/v1/events", json={"name": "order.created", "payload": order()}, headers=AUTH
    )
    assert_matches("EventAccepted", accepted.get_json())
    bad = order()
    del bad["customerId"]
    refused = client.post(
        "/api/v1/events", json={"name": "order.created", "payload": bad}, headers=AUTH
    )
    assert_matches("SchemaValidationError", refused.get_json())
    assert_matches("Error", client.post("/api/v1/events", json={}, headers=AUTH).get_json())
    event_id = accepted.get_json()["event_id"]
    assert_matches("EventResponse", client.get(f"/api/v1/events/{event_id}", headers=AUTH).json)
    assert_matches("EventList", client.get("/api/v1/events", headers=AUTH).get_json())
    assert_matches("WorkflowList", client.get("/api/v1/workflows", headers=AUTH).get_json())
    one = client.get("/api/v1/workflows/ecommerce-order-flow", headers=AUTH)
    assert_matches("WorkflowResponse", one.get_json())
    assert_matches("Health", client.get("/health").get_json())
    unauthorized = client.get("/api/v1/events")
    documented = document()["paths"]["/api/v1/events"]["get"]["responses"]["401"]["headers"]
    assert set(documented) <= set(unauthorized.headers.keys())


def implemented(url_map: Map, path: str, method: str) -> bool:
    """Whether the app really routes ``method path`` (the executions module may be a stub)."""
    adapter = url_map.bind("localhost")
    concrete = path.replace("{", "").replace("}", "")
    try:
        adapter.match(concrete, method=method.upper())
    except Exception:  # werkzeug's NotFound / MethodNotAllowed
        return False
    return True


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzzing_finds_no_server_error_or_contradiction(
    make_app: Callable[..., Flask], clean_db: Engine, mode: GenerationMode
) -> None:
    app = make_app(max_body_bytes=64 * 1024)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        response_headers_conformance,
    ]
    if mode is GenerationMode.NEGATIVE:
        checks.append(negative_data_rejection)
    operations = [r.ok() for r in schema.get_all_operations()]
    tested = 0
    seen: dict[str, set[int]] = {}
    for operation in operations:
        if not implemented(app.url_map, operation.path, operation.method):
            continue
        tested += 1

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            response = case.call(headers={**(case.headers or {}), **AUTH})
            seen.setdefault(f"{case.method} {case.path}", set()).add(response.status_code)
            case.validate_response(response, checks=checks)

        try:
            run()
        except Unsatisfiable:
            # nothing to negate (no parameters, no body): only positive cases exist
            assert mode is GenerationMode.NEGATIVE
    assert tested >= 6
    if mode is GenerationMode.POSITIVE:  # the fuzzer got through auth and really sent events
        assert 202 in seen["POST /api/v1/events"], seen
        assert 200 in seen["GET /api/v1/events"], seen
    else:
        # 200: a dry run; 207: a CloudEvents batch, its entries answered one by one (a
        # negated header such as ce-type cannot make either invalid as a whole)
        accepted = {200, 202, 207}
        assert seen["POST /api/v1/events"] - accepted <= {400, 401, 403, 409, 413, 415, 422}, seen
