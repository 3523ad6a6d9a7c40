"""The Events API's request envelope: media type, size, JSON, and each field checked.

:func:`read_envelope` turns a request into an :class:`Envelope` or refuses it:
415 (not JSON), 413 (too large, checked before parsing), 400 naming the field
(bad JSON, missing or ill-typed ``name``, ``payload`` not an object, an unknown
field, ``id`` and ``Idempotency-Key`` that differ, text PostgreSQL cannot store).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge

from app.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed

MAX_NAME = 255
MAX_KEY = 255
#: a dotted hierarchical name: at least two segments of letters, digits, ``_`` and ``-``
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9][A-Za-z0-9_-]*)+")
_FIELDS = frozenset({"name", "payload", "id"})


@dataclass(frozen=True)
class Envelope:
    """A well-formed event request: its name, payload and idempotency key."""

    name: str
    payload: dict[str, Any]
    key: str | None
    #: sha256 of the canonical ``{name, payload}``: a replay has the same hash
    body_hash: str


def read_envelope(request: Request, max_bytes: int) -> Envelope:
    """Check the media type and size, then parse and check the JSON envelope."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType(
            "the request body must be JSON sent with `Content-Type: application/json`",
            details={"content_type": request.content_type},
        )
    too_large = PayloadTooLarge(
        f"the request body is larger than {max_bytes} bytes", details={"limit": max_bytes}
    )
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_large
    try:
        raw = request.stream.read(max_bytes + 1)
    except RequestEntityTooLarge:
        raise too_large from None
    if len(raw) > max_bytes:
        raise too_large
    return parse_envelope(raw, request.headers.get("Idempotency-Key"))


def parse_envelope(raw: bytes, header_key: str | None) -> Envelope:
    """The envelope in ``raw``; 400 ``validation_error`` naming the field that is wrong."""
    body = _json(raw)
    if not isinstance(body, dict):
        raise _invalid("body", "the request body must be a JSON object with `name` and `payload`")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise _invalid(
            unknown[0], f"unknown field(s): {', '.join(unknown)}; allowed: id, name, payload"
        )
    name = body.get("name")
    if name is None:
        raise _invalid("name", "`name` is required")
    if not isinstance(name, str):
        raise _invalid("name", "`name` must be a string")
    if len(name) > MAX_NAME:
        raise _invalid("name", f"`name` must be at most {MAX_NAME} characters")
    if not NAME.fullmatch(name):
        raise _invalid("name", "`name` must be a dotted hierarchical name such as `order.created`")
    payload = body.get("payload", {})
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise _invalid("payload", "`payload` must be a JSON object")
    key = _key(body.get("id"), header_key)
    canonical = json.dumps(
        {"name": name, "payload": payload}, sort_keys=True, separators=(",", ":")
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return Envelope(name=name, payload=payload, key=key, body_hash=digest)


def _json(raw: bytes) -> Any:
    try:
        # strict UTF-8 (RFC 8259), so that only escapes can make a lone surrogate
        body = json.loads(raw.decode("utf-8-sig"), parse_constant=_no_constant, parse_float=_finite)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise _invalid("body", f"the request body is not valid JSON: {reason}") from None
    if _SUSPECT_ESCAPE.search(raw) and _has_unstorable(body):
        raise _invalid(
            "payload", "strings may not contain NUL (\\u0000) or unpaired surrogates (\\ud800...)"
        )
    return body


#: escapes that may decode to text no database stores: NUL and UTF-16 surrogates
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is out of the range of a JSON number")
    return value


def _has_unstorable(value: Any) -> bool:
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_unstorable(k) or _has_unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_unstorable(v) for v in value)
    return False


def _key(body_id: Any, header_key: str | None) -> str | None:
    if body_id is not None:
        if not isinstance(body_id, str):
            raise _invalid("id", "`id` must be a string")
        if not body_id or len(body_id) > MAX_KEY:
            raise _invalid("id", f"`id` must be 1 to {MAX_KEY} characters")
    if header_key is not None and not (0 < len(header_key) <= MAX_KEY and header_key.isprintable()):
        raise _invalid(
            "Idempotency-Key", f"`Idempotency-Key` must be 1 to {MAX_KEY} printable characters"
        )
    if body_id is not None and header_key is not None and body_id != header_key:
        raise _invalid(
            "id", "`id` and the `Idempotency-Key` header differ; send one, or both equal"
        )
    return body_id if body_id is not None else header_key


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, details={"field": field})
