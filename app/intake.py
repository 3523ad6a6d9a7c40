"""Accepting an event: parse the envelope, validate, deduplicate, store, then publish.

:func:`read_envelope` turns the request body into an :class:`Envelope` (415, 413
and 400 refusals); :func:`accept` validates the payload against every subscribed
workflow (422), applies the idempotency key (duplicate or 409), commits the event
with its planned executions in one transaction and, after the commit, publishes
its dispatch. Nothing here compiles a schema or reads a file per request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge

from app.errors import (
    Conflict,
    PayloadTooLarge,
    SchemaValidationFailed,
    UnsupportedMediaType,
    ValidationFailed,
)
from app.logs import log_event
from app.state import HeraldState
from workflows.ids import new_id
from workflows.model import EventStatus
from workflows.registry import PayloadError
from workflows.store import events as store
from workflows.store.models import Event

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


@dataclass(frozen=True)
class RequestMeta:
    """Who sent the request and how to find it in the logs."""

    token_name: str
    client_addr: str | None
    request_id: str


@dataclass(frozen=True)
class Answer:
    """The 202 answer to an accepted (or replayed) event."""

    event_id: str
    name: str
    workflows: list[dict[str, str]]
    duplicate: bool

    @property
    def message(self) -> str:
        """What happened, in words."""
        if not self.workflows:
            text = (
                f"event accepted; no workflow is subscribed to {self.name!r} (stored as unrouted)"
            )
        else:
            text = f"event accepted; {len(self.workflows)} workflow(s) will run"
        return f"{text} (duplicate: the original answer)" if self.duplicate else text

    def body(self) -> dict[str, Any]:
        """The response body of the contract."""
        return {
            "success": True,
            "message": self.message,
            "event_id": self.event_id,
            "data": {
                "event_id": self.event_id,
                "message": self.message,
                "name": self.name,
                "workflows": self.workflows,
                "duplicate": self.duplicate,
            },
        }


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


def accept(st: HeraldState, envelope: Envelope, meta: RequestMeta) -> Answer:
    """Validate, deduplicate and store the event, then publish its dispatch after the commit."""
    registry = st.definitions.registry  # one snapshot for the whole request
    errors = registry.validate(envelope.name, envelope.payload)
    if errors:
        details = group_errors(errors)
        log_event(
            "event.validation_failed",
            event_name=envelope.name,
            request_id=meta.request_id,
            workflows=[d["workflow_id"] for d in details],
        )
        failing = ", ".join(d["workflow_id"] for d in details)
        raise SchemaValidationFailed(
            f"the payload does not satisfy the schema of workflow(s) {failing}; "
            "nothing was started",
            details=details,
        )
    routes = plan_routes(registry.subscribers(envelope.name))
    event_id = new_id("evt")
    publish = bool(routes) and st.publisher.available()
    values = {
        "id": event_id,
        "name": envelope.name,
        "payload": envelope.payload,
        "status": EventStatus.ACCEPTED if routes else EventStatus.UNROUTED,
        "routes": routes,
        "token_name": meta.token_name,
        "client_addr": meta.client_addr[:64] if meta.client_addr else None,
        "request_id": meta.request_id,
        "idempotency_key": envelope.key,
        "request_hash": envelope.body_hash,
        "received_at": datetime.now(UTC),
        # counts the publish right after the commit (see app.publish): one transaction
        "publish_count": 1 if publish else 0,
    }
    with st.sessions.begin() as session:
        # Insert first (one round trip for a new key); a taken key is then looked at.
        if not store.insert_event(session, values):
            assert envelope.key is not None, "only an idempotency key can conflict"
            existing = store.find_by_idempotency_key(session, meta.token_name, envelope.key)
            assert existing is not None, "the conflicting event vanished"
            if not _expired(existing, st.settings.idempotency_ttl_seconds):
                return replay(existing, envelope)
            store.release_idempotency_key(session, existing.id, envelope.key)
            if not store.insert_event(session, values):
                # a concurrent request re-used the expired key first: answer as its duplicate
                winner = store.find_by_idempotency_key(session, meta.token_name, envelope.key)
                assert winner is not None, "the conflicting event vanished"
                return replay(winner, envelope)
    workflows = [
        {"workflow_id": r["workflow_id"], "execution_id": r["execution_id"]} for r in routes
    ]
    if routes:
        log_event(
            "event.routed",
            event_id=event_id,
            event_name=envelope.name,
            request_id=meta.request_id,
            workflows=[r["workflow_id"] for r in routes],
        )
        if publish:
            st.publisher.dispatch(event_id, request_id=meta.request_id)
        else:
            log_event(
                "event.publish_failed",
                level=logging.WARNING,
                event_id=event_id,
                request_id=meta.request_id,
                reason="the broker refused moments ago; left to the recovery sweep",
            )
    else:
        log_event(
            "event.unrouted",
            event_id=event_id,
            event_name=envelope.name,
            request_id=meta.request_id,
        )
    return Answer(event_id=event_id, name=envelope.name, workflows=workflows, duplicate=False)


def plan_routes(subscriptions: Any) -> list[dict[str, str]]:
    """One planned execution per subscribed workflow, with its id fixed now."""
    routes: list[dict[str, str]] = []
    seen: set[str] = set()
    for subscription in subscriptions:
        workflow = subscription.workflow
        if workflow.id in seen:  # two triggers of one workflow on the same name
            continue
        seen.add(workflow.id)
        routes.append(
            {
                "workflow_id": workflow.id,
                "version": workflow.version,
                "execution_id": new_id("exe"),
            }
        )
    return routes


def group_errors(errors: list[PayloadError]) -> list[dict[str, Any]]:
    """422 details: one entry per failing workflow, each error with its JSON pointer path."""
    grouped: dict[str, list[dict[str, str]]] = {}
    for error in errors:
        grouped.setdefault(error.workflow_id, []).append(
            {"path": error.path, "message": error.message}
        )
    return [{"workflow_id": wid, "errors": errs} for wid, errs in grouped.items()]


def replay(existing: Event, envelope: Envelope) -> Answer:
    """The original answer for a replayed key, or 409 if the body differs."""
    if existing.request_hash != envelope.body_hash:
        raise Conflict(
            "this idempotency key was already used by this token with a different body",
            details={"field": "id", "event_id": existing.id},
        )
    workflows = [
        {"workflow_id": r["workflow_id"], "execution_id": r["execution_id"]}
        for r in existing.routes
    ]
    return Answer(existing.id, existing.name, workflows, duplicate=True)


def _expired(event: Event, ttl_seconds: int) -> bool:
    return store.as_utc(event.received_at) < datetime.now(UTC) - timedelta(seconds=ttl_seconds)
