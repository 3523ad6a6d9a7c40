"""The Events API's request envelope: media type, size, JSON, and each field checked.

:func:`read_envelope` turns a request into an :class:`Envelope` or refuses it:
415 (not JSON), 413 (too large, checked before parsing), 400 naming the field
(bad JSON, missing or ill-typed ``name``, ``payload`` not an object, an unknown
field, ``id`` and ``Idempotency-Key`` that differ, text PostgreSQL cannot store, a
payload nested deeper than ``HERALD_MAX_DEPTH``).

Nothing here recurses over the body: a body can nest as deep as the JSON parser
allows, and the one scan of it (depth, unstorable text) keeps its own stack.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge

from app.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed

MAX_NAME = 255
MAX_KEY = 255
#: how deeply a payload may nest by default (``HERALD_MAX_DEPTH``)
MAX_DEPTH = 64
#: the longest JSON pointer an error shows (keys may be long)
_MAX_POINTER = 300
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
    #: a structured CloudEvent's ``traceparent`` attribute (distributed tracing extension)
    traceparent: str | None = None


def read_envelope(request: Request, max_bytes: int, max_depth: int = MAX_DEPTH) -> Envelope:
    """Check the media type and size, then parse and check the JSON envelope."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType(
            "the request body must be JSON sent with `Content-Type: application/json`",
            details={"content_type": request.content_type},
        )
    return parse_envelope(
        read_body(request, max_bytes), request.headers.get("Idempotency-Key"), max_depth
    )


def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, at most ``max_bytes`` (413 above, checked before reading it all)."""
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
    return raw


def parse_envelope(raw: bytes, header_key: str | None, max_depth: int = MAX_DEPTH) -> Envelope:
    """The envelope in ``raw``; 400 ``validation_error`` naming the field that is wrong.

    ``max_depth`` bounds the payload's nesting: the payload object is depth 1.
    """
    return envelope_of(parse_json(raw, max_depth), header_key)


def envelope_of(body: Any, header_key: str | None = None) -> Envelope:
    """The envelope in a parsed (and depth-checked) body; 400 naming the wrong field."""
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


def parse_json(raw: bytes, max_depth: int) -> Any:
    """The JSON in ``raw``; 400 if it is not JSON, nests deeper than ``max_depth`` below the
    top level or holds text no database stores."""
    try:
        # strict UTF-8 (RFC 8259), so that only escapes can make a lone surrogate
        body = json.loads(raw.decode("utf-8-sig"), parse_constant=_no_constant, parse_float=_finite)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise _invalid("body", f"the request body is not valid JSON: {reason}") from None
    text = _SUSPECT_ESCAPE.search(raw) is not None
    # the body object holds the payload: the payload may nest max_depth deep below it, and
    # fewer brackets than that cannot nest deeper (counting bytes costs next to nothing)
    deep = raw.count(b"[") + raw.count(b"{") > max_depth + 1
    if text or deep:
        _scan(body, max_depth, text)
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


def _scan(body: Any, max_depth: int, text: bool) -> None:
    """400 for a container nested deeper than ``max_depth`` (the payload is depth 1) or,
    with ``text``, a string or key no database stores.

    Level by level, with lists of its own (never recursion, so any depth is safe) and
    no bookkeeping per value; only once something is wrong is its path looked for.
    """
    level = [body] if type(body) is dict or type(body) is list else []
    if text and type(body) is str and _UNSTORABLE.search(body):
        raise _unstorable(body)
    depth = 0
    while level:
        if depth > max_depth:
            too_deep = lambda value, at: at > max_depth and type(value) in (dict, list)  # noqa: E731
            parts = _find(body, too_deep, max_depth)
            field, pointer = _place(parts)
            raise ValidationFailed(
                f"the payload nests deeper than {max_depth} levels (HERALD_MAX_DEPTH) at "
                f"{field}{pointer}",
                details={"field": field, "path": pointer, "max_depth": max_depth},
            )
        below: list[Any] = []
        children: Iterable[Any]
        for value in level:
            if type(value) is dict:
                if text and any(_UNSTORABLE.search(key) for key in value):
                    raise _unstorable(body)
                children = value.values()
            else:
                children = value
            for child in children:
                kind = type(child)
                if kind is dict or kind is list:
                    below.append(child)
                elif text and kind is str and _UNSTORABLE.search(child):
                    raise _unstorable(body)
        level = below
        depth += 1


def _unstorable(body: Any) -> ValidationFailed:
    parts = _find(body, lambda value, at: type(value) is str and bool(_UNSTORABLE.search(value)))
    field, pointer = _place(parts)
    return ValidationFailed(
        "strings may not contain NUL (\\u0000) or unpaired surrogates (\\ud800...)",
        details={"field": field, "path": pointer},
    )


def _find(
    body: Any, wrong: Callable[[Any, int], bool], max_depth: int | None = None
) -> list[str | int]:
    """The path of the first value (or key) ``wrong(value, depth)`` says is wrong, depth first;
    never below ``max_depth + 1``. Called only once the level scan found something."""
    stack: list[tuple[Any, int, list[str | int]]] = [(body, 0, [])]
    while stack:
        value, depth, parts = stack.pop()
        if wrong(value, depth):
            return parts
        if type(value) is dict:
            for key in value:
                if wrong(key, depth + 1):
                    return [*parts, key]
            children: Any = value.items()
        elif type(value) is list:
            children = enumerate(value)
        else:
            continue
        if max_depth is None or depth <= max_depth:
            below = [(child, depth + 1, [*parts, key]) for key, child in children]
            stack.extend(reversed(below))
    return []


def _place(parts: list[str | int]) -> tuple[str, str]:
    """The top-level field of a place in the body, and its JSON pointer below that field."""
    field = _storable(str(parts[0])) if parts else "body"
    pointer = "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts[1:])
    if len(pointer) > _MAX_POINTER:
        pointer = pointer[: _MAX_POINTER - 3] + "..."
    return field, _storable(pointer)


def _storable(text: str) -> str:
    """``text`` with NUL and lone surrogates written as escapes (the answer is audited)."""
    escaped = text.replace("\x00", "\\u0000")
    return escaped.encode("utf-8", "backslashreplace").decode("utf-8")


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
