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
