"""Compiling payload schemas: herald's email rule, nothing fetched, refusals located."""

from __future__ import annotations

from typing import Any

import pytest

from workflows.payload_schema import UncompilableSchema, compile_payload_schema, is_email

EMAILS = [
    ("customer@example.com", True),
    ("a.b+c@mail.example.org", True),
    ("ü@例え.jp", True),
    ("a@localhost", False),  # jsonschema_rs alone accepts it: the domain must be dotted
    ('"a b"@example.com', False),  # and a quoted local part with a space
    ("a@b@example.com", False),
    ("customer@", False),
    ("@example.com", False),
    ("a@example..com", False),
]


@pytest.mark.parametrize(("value", "valid"), EMAILS)
def test_email_is_herald_s_strict_rule(value: str, valid: bool) -> None:
    validator = compile_payload_schema({"format": "email"})

    assert is_email(value) is valid
    assert validator.is_valid(value) is valid


UNCOMPILABLE: list[tuple[dict[str, Any], tuple[str | int, ...], str]] = [
    ({"properties": {"a": {"pattern": "a{,3}"}}}, ("properties", "a", "pattern"), "regex"),
    ({"$ref": "https://example.com/order.json"}, (), "Retrieval is disabled"),
    ({"$defs": {"x": {"$id": "https://example.com/x", "$ref": "y.json"}}}, (), "y.json"),
]


@pytest.mark.parametrize(("schema", "path", "said"), UNCOMPILABLE)
def test_a_schema_it_cannot_compile_is_refused_with_where_and_why(
    schema: dict[str, Any], path: tuple[str | int, ...], said: str
) -> None:
    with pytest.raises(UncompilableSchema) as caught:
        compile_payload_schema(schema)

    assert caught.value.path == path
    assert said in caught.value.message
