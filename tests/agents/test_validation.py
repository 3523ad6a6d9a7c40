"""Checking an agent's input and answer against the action's schemas."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from workers.agents.validation import check_input, json_from, parse_output, thaw
from workflows.errors import InvalidStepIO

SCHEMA = {
    "type": "object",
    "properties": {
        "email": {"type": "string", "format": "email"},
        "items": {"type": "array", "items": {"type": "integer", "minimum": 1}},
    },
    "required": ["email"],
}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ('```\n{"a": [1, 2]}\n```', {"a": [1, 2]}),
        ('Sure! {"a": 1} Hope that helps.', {"a": 1}),
        ("[1, 2]", [1, 2]),
    ],
)
def test_json_is_found_in_what_models_write(content: str, expected: Any) -> None:
    assert json_from(content) == expected


@pytest.mark.parametrize("content", ["", "valid", '{"a": 1', "{nope}"])
def test_text_that_is_not_json_is_refused(content: str) -> None:
    with pytest.raises(ValueError):
        json_from(content)


@pytest.mark.parametrize(
    ("value", "path", "message"),
    [
        ({}, "/", '"email" is a required property'),
        ({"email": "not-an-email"}, "/email", '"not-an-email" is not a "email"'),
        ({"email": "a@example.com", "items": [1, 0]}, "/items/1", "0 is less than the minimum"),
        ({"email": 5}, "/email", '5 is not of type "string"'),
    ],
)
def test_input_errors_name_the_field_and_the_problem(value: Any, path: str, message: str) -> None:
    with pytest.raises(InvalidStepIO) as caught:
        check_input("agent-a", "act", SCHEMA, value)

    error = caught.value
    assert error.message.startswith("agent 'agent-a' action 'act': the input does not fit: ")
    assert f"at {path}: {message}" in error.message
    assert error.details["where"] == "input"
    errors: Any = error.details["errors"]
    assert errors[0]["path"] == path
    assert error.retryable is False


def test_every_problem_is_listed() -> None:
    with pytest.raises(InvalidStepIO) as caught:
        parse_output("a", "b", SCHEMA, {"email": 1, "items": ["x"]}, "...")

    assert "(and 1 more)" in caught.value.message
    errors: Any = caught.value.details["errors"]
    assert [e["path"] for e in errors] == ["/email", "/items/0"]


def test_data_built_by_the_provider_is_validated_too() -> None:
    assert parse_output("a", "b", SCHEMA, {"email": "x@example.com"}, "") == {
        "email": "x@example.com"
    }


def test_read_only_schemas_are_thawed_for_jsonschema() -> None:
    frozen = MappingProxyType({"type": "object", "required": ("a",)})

    assert thaw(frozen) == {"type": "object", "required": ["a"]}


@pytest.mark.timeout(20)  # Python's backtracking engine needs minutes (2^32 steps) here
def test_schema_patterns_run_in_linear_time() -> None:
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^(a+)+$"}}}
    with pytest.raises(InvalidStepIO) as caught:
        check_input("agent-a", "act", schema, {"code": "a" * 32 + "!"})
    assert "does not match" in caught.value.message
    with pytest.raises(InvalidStepIO):
        parse_output("agent-a", "act", schema, {"code": "a" * 32 + "!"}, "")


def test_a_schema_jsonschema_rs_cannot_compile_is_named() -> None:
    schema = {"type": "string", "pattern": "^a\\Z"}  # Python's syntax, not ECMA-262's
    with pytest.raises(InvalidStepIO) as caught:
        check_input("agent-a", "act", schema, "a")
    assert caught.value.details["errors"][0]["path"] == "<schema>"  # type: ignore[index]
