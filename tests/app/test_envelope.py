"""parse_envelope: what a well-formed body becomes, and which field a bad one names."""

from __future__ import annotations

import json

import pytest

from app.envelope import parse_envelope
from app.errors import ValidationFailed


def test_same_content_same_hash_whatever_the_key_order() -> None:
    one = parse_envelope(b'{"name": "a.b", "payload": {"x": 1, "y": [1, 2]}}', None)
    two = parse_envelope(b'{"payload": {"y": [1, 2], "x": 1}, "name": "a.b", "id": "k"}', None)
    other = parse_envelope(b'{"name": "a.b", "payload": {"x": 2, "y": [1, 2]}}', None)

    assert one.body_hash == two.body_hash != other.body_hash
    assert (one.key, two.key) == (None, "k")


@pytest.mark.parametrize(
    ("body", "header", "payload", "key"),
    [
        ({"name": "a.b"}, None, {}, None),
        ({"name": "a.b", "payload": None}, None, {}, None),
        ({"name": "a.b", "id": "k"}, "k", {}, "k"),
        ({"name": "order.item.added", "payload": {"n": 1}}, "h", {"n": 1}, "h"),
    ],
)
def test_well_formed(
    body: dict[str, object], header: str | None, payload: dict[str, object], key: str | None
) -> None:
    envelope = parse_envelope(json.dumps(body).encode(), header)
    assert (envelope.name, envelope.payload, envelope.key) == (body["name"], payload, key)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"", "body"),
        (b'"a.b"', "body"),
        (b'{"name": "a..b"}', "name"),
        (b'{"name": ".a.b"}', "name"),
        (b'{"name": "a.b."}', "name"),
        (b'{"name": "a.b", "payload": "x"}', "payload"),
        (b'{"name": "a.b", "id": ""}', "id"),
        (b'{"name": "a.b", "Name": "x"}', "Name"),
    ],
)
def test_malformed_names_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_envelope(raw, None)
    assert caught.value.details == {"field": field}


def nested(depth: int, leaf: str = "1") -> bytes:
    """A body whose payload nests ``depth`` deep: the payload object, then arrays under "a"."""
    inner = "[" * (depth - 1) + leaf + "]" * (depth - 1)
    return ('{"name": "a.b", "payload": {"a": ' + inner + "}}").encode()


def test_a_payload_may_nest_max_depth_deep() -> None:
    assert parse_envelope(nested(64), None).payload["a"] is not None
    assert parse_envelope(nested(3), None, max_depth=3).payload == {"a": [[1]]}


@pytest.mark.parametrize("depth", [65, 400, 900])
def test_deeper_is_a_400_naming_the_path(depth: int) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_envelope(nested(depth), None)
    details = caught.value.details
    assert details["field"] == "payload" and details["max_depth"] == 64
    assert details["path"] == "/a" + "/0" * 63  # the first container past the limit
    assert "deeper than 64" in caught.value.message


@pytest.mark.parametrize("leaf", ['"\\u0000"', '"\\ud800"', '{"k\\u0000": 1}'])
def test_unstorable_text_deep_down_is_a_400_not_a_recursion_error(leaf: str) -> None:
    # 400 levels: the old recursive scan ran out of stack on such a body (a 500)
    with pytest.raises(ValidationFailed) as caught:
        parse_envelope(nested(400, leaf), None, max_depth=1000)
    assert caught.value.details["field"] == "payload"
    assert caught.value.details["path"].startswith("/a/0/0/")
    assert "NUL" in caught.value.message


def test_unstorable_text_is_named_where_it_is() -> None:
    raw = b'{"name": "a.b", "payload": {"ok": "x", "list": [1, {"bad": "\\u0000"}]}}'
    with pytest.raises(ValidationFailed) as caught:
        parse_envelope(raw, None)
    assert caught.value.details == {"field": "payload", "path": "/list/1/bad"}
    with pytest.raises(ValidationFailed) as caught:
        parse_envelope(b'{"name": "a.b", "id": "k\\u0000"}', None)
    assert caught.value.details == {"field": "id", "path": ""}
