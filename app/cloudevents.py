"""CloudEvents 1.0 over HTTP: structured, binary and batched content modes, as envelopes.

- structured: ``Content-Type: application/cloudevents+json``, the body is the event;
- binary: the attributes are ``ce-*`` headers (``ce-specversion``, ``ce-id``,
  ``ce-source``, ``ce-type``) and the body is the data (``application/json``);
- batched: ``Content-Type: application/cloudevents-batch+json``, a JSON array of
  structured events (taken through the batch path, :mod:`app.batch`).

``type`` is the event name, ``data`` the payload (a JSON object; none is ``{}``),
and ``id`` with ``source`` is the idempotency key: a CloudEvent sent again is
answered as the duplicate of the first. A refused attribute is a 400 naming it.
Parsing is herald's own, not the ``cloudevents`` SDK's: it shares the envelope's
strict JSON reading (depth, text PostgreSQL cannot store) and names the field.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import Request

from app.batch import check_size
from app.envelope import MAX_KEY, MAX_NAME, NAME, Envelope, parse_json, read_body
from app.errors import ClientError, UnsupportedMediaType, ValidationFailed

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
_REQUIRED = ("specversion", "id", "source", "type")
#: the prefix that keeps CloudEvent keys apart from keys clients send as ``id``
_KEY_PREFIX = "ce:"


def is_cloudevent(request: Request) -> bool:
    """Whether the request is a CloudEvent in structured or binary mode."""
    return request.mimetype == STRUCTURED or "ce-specversion" in request.headers


def read_cloudevent(request: Request, max_bytes: int, max_depth: int) -> Envelope:
    """The envelope of a structured or binary CloudEvent; 400 naming the attribute."""
    if request.headers.get("Idempotency-Key") is not None:
        raise _invalid(
            "Idempotency-Key",
            "a CloudEvent's idempotency key is its `id` and `source`; "
            "do not send `Idempotency-Key` with it",
        )
    raw = read_body(request, max_bytes)
    if request.mimetype == STRUCTURED:
        return from_structured(parse_json(raw, max_depth))
    if not _json_type(request.mimetype):
        raise UnsupportedMediaType(
            "the data of a binary-mode CloudEvent must be JSON (`Content-Type: application/json`)",
            details={"content_type": request.content_type},
        )
    attributes = {
        name: request.headers.get(f"ce-{name}") for name in (*_REQUIRED, "datacontenttype")
    }
    data = parse_json(raw, max_depth) if raw else None
    return _envelope(attributes, data, header=True)


def from_structured(event: Any) -> Envelope:
    """The envelope of one structured CloudEvent (a parsed JSON object)."""
    if not isinstance(event, dict):
        raise _invalid("event", "a structured CloudEvent is a JSON object")
    if "data_base64" in event:
        raise _invalid("data_base64", "binary data is not supported: `data` must be a JSON object")
    content_type = event.get("datacontenttype")
    if content_type is not None and not (
        isinstance(content_type, str) and _json_type(content_type.split(";")[0].strip())
    ):
        raise _invalid("datacontenttype", "`datacontenttype` must be application/json")
    return _envelope(event, event.get("data"), header=False)


def batch_entries(body: Any, batch_max: int) -> list[Envelope | ClientError]:
    """Each structured CloudEvent of a batched-mode body, or the error that refused it."""
    if not isinstance(body, list):
        raise _invalid("body", "a CloudEvents batch is a JSON array of structured events")
    check_size(body, batch_max, "body")
    entries: list[Envelope | ClientError] = []
    for event in body:
        try:
            entries.append(from_structured(event))
        except ClientError as exc:
            entries.append(exc)
    return entries


def _envelope(attributes: dict[str, Any], data: Any, *, header: bool) -> Envelope:
    for name in _REQUIRED:
        value = attributes.get(name)
        field = f"ce-{name}" if header else name
        if value is None:
            raise _invalid(field, f"the CloudEvents attribute `{name}` is required")
        if not isinstance(value, str) or not value:
            raise _invalid(field, f"the CloudEvents attribute `{name}` must be a non-empty string")
    if attributes["specversion"] != "1.0":
        raise _invalid(
            "ce-specversion" if header else "specversion",
            f"only CloudEvents 1.0 is supported, not {attributes['specversion'][:20]!r}",
        )
    name = attributes["type"]
    if len(name) > MAX_NAME or not NAME.fullmatch(name):
        raise _invalid(
            "ce-type" if header else "type",
            f"`type` is the event name: a dotted name such as `order.created`, at most "
            f"{MAX_NAME} characters",
        )
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _invalid("data", "`data` is the payload: it must be a JSON object")
    canonical = json.dumps({"name": name, "payload": data}, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    traceparent = attributes.get("traceparent")
    return Envelope(
        name,
        data,
        _key(attributes["source"], attributes["id"]),
        digest,
        traceparent if isinstance(traceparent, str) and not header else None,
    )


def _key(source: str, event_id: str) -> str:
    """The idempotency key of ``(source, id)``: readable when short, else a digest of both."""
    key = f"{_KEY_PREFIX}{source}#{event_id}"
    if len(key) <= MAX_KEY and key.isprintable():
        return key
    both = json.dumps([source, event_id]).encode("utf-8", "surrogatepass")
    return _KEY_PREFIX + "sha256:" + hashlib.sha256(both).hexdigest()


def _json_type(mimetype: str) -> bool:
    return mimetype == "application/json" or mimetype.endswith("+json")


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, details={"field": field})
