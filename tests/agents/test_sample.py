"""Instances built from schemas for the mock provider: valid and deterministic."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from workers.agents.providers.sample import sample

SCHEMAS: list[dict[str, Any]] = [
    {"type": "string"},
    {"type": "string", "format": "email"},
    {"type": "string", "format": "date-time"},
    {"type": "string", "format": "date"},
    {"type": "string", "format": "uri"},
    {"type": "string", "format": "uuid"},
    {"type": "string", "format": "ipv4"},
    {"type": "string", "format": "ipv6"},
    {"type": "string", "format": "hostname"},
    {"type": "string", "minLength": 40},
    {"type": "string", "maxLength": 3},
    {"type": "integer", "minimum": 1},
    {"type": "integer", "minimum": 5, "maximum": 5},
    {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 3},
    {"type": "integer", "minimum": 1, "multipleOf": 7},
    {"type": "number", "minimum": 0},
    {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    {"type": "number", "maximum": -10},
    {"type": "number", "minimum": 0, "maximum": 500, "multipleOf": 0.01},
    {"type": "number", "exclusiveMinimum": 1, "multipleOf": 0.25},
    {"type": "boolean"},
    {"type": "null"},
    {"type": ["null", "integer"]},
    {"enum": ["approved", "rejected", "review"]},
    {"const": "fixed"},
    {"type": "array", "items": {"type": "integer"}, "minItems": 3},
    {"type": "array", "items": {"type": "string"}, "maxItems": 0},
    {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]},
    {"anyOf": [{"type": "null"}, {"type": "string", "format": "email"}]},
    {"oneOf": [{"type": "integer"}, {"type": "string"}]},
    {"allOf": [{"properties": {"a": {"type": "integer"}}}, {"required": ["a", "b"]}]},
    {
        "type": "object",
        "properties": {
            "valid": {"type": "boolean"},
            "status": {"type": "string", "enum": ["ok", "bad"]},
            "customer": {
                "type": "object",
                "properties": {"email": {"type": "string", "format": "email"}},
                "required": ["email"],
                "additionalProperties": False,
            },
            "total": {"type": "number", "minimum": 0},
            "lines": {
                "type": "array",
                "items": {"$ref": "#/$defs/line"},
                "minItems": 2,
            },
        },
        "required": ["valid", "status", "customer", "total", "lines", "note"],
        "additionalProperties": {"type": "string"},
        "$defs": {
            "line": {
                "type": "object",
                "properties": {"quantity": {"type": "integer", "minimum": 1}},
                "required": ["quantity"],
            }
        },
    },
    {
        "$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}},
        "$ref": "#/$defs/node",
    },
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=[str(i) for i in range(len(SCHEMAS))])
def test_instances_satisfy_their_schema(schema: dict[str, Any]) -> None:
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    for seed in ("a", "b", "c"):
        value = sample(schema, seed)
        assert list(validator.iter_errors(value)) == [], (seed, value)


def test_same_seed_same_value_other_seed_other_value() -> None:
    schema = SCHEMAS[-2]

    assert sample(schema, "seed-1") == sample(schema, "seed-1")
    assert sample(schema, "seed-1") != sample(schema, "seed-2")


def test_required_and_declared_properties_are_all_present() -> None:
    value = sample(SCHEMAS[-2], "x")

    assert set(value) == {"valid", "status", "customer", "total", "lines", "note"}
    assert len(value["lines"]) == 2
