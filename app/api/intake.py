"""Intake beyond one event: ``POST /api/v1/events/batch`` (and, later here, replays).

A batch is refused whole only for what concerns the request (401, 403 without
``events:write``, 413, 415, a body that is not ``{"events": [...]}`` or holds more
than ``HERALD_BATCH_MAX`` entries); otherwise it is answered ``207`` with one
result per entry (:mod:`app.batch`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from app import cloudevents, metrics
from app.api.common import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    authorize,
    caller,
    ok,
    refuse_unknown_query,
)
from app.api.events import audit, record_rejections
from app.auth import require_scope, visibility
from app.batch import Outcome, accept_batch, batch_body, check_size
from app.envelope import Envelope, envelope_of, parse_json, read_body
from app.errors import (
    ClientError,
    Conflict,
    NotFound,
    SchemaValidationFailed,
    UnsupportedMediaType,
    ValidationFailed,
)
from app.intake import plan_routes, refusal_details
from app.logs import log_event
from app.refusals import COUNTED
from app.state import HeraldState, state
from workflows.engine import replay as engine_replay
from workflows.errors import ExecutionConflict
from workflows.model import EventStatus
from workflows.settings import ApiToken
from workflows.store import events as store
from workflows.store.models import Event, utcnow

bp = Blueprint("intake", __name__)

#: the media types a batch may come in
BATCH_TYPES = ("application/json", cloudevents.BATCH)


@bp.post("/events/batch")
def post_batch() -> Response:
    """Accept up to ``HERALD_BATCH_MAX`` events: 207 with one result per entry."""
    st = state()
    token: ApiToken | None = None
    try:
        token = caller()
        require_scope(token, "events:write")
        st.limiter.check(token.name)
        refuse_unknown_query()
    except ClientError as exc:
        refuse_batch(st, exc, token)
        raise
    return batch_of(st, token)


def batch_of(st: HeraldState, token: ApiToken) -> Response:
    """The 207 for the batch in this request, sent by ``token`` (authenticated, within its
    rate: ``POST /events`` hands a CloudEvents batch over here once it has checked both)."""
    try:
        entries = read_batch(st.settings.batch_max, st.settings.batch_max_bytes)
        outcomes = accept_batch(
            st, token, entries, client_addr=request.remote_addr, request_id=g.request_id
        )
    except ClientError as exc:
        refuse_batch(st, exc, token)
        raise
    count_outcomes(st, entries, outcomes)
    refused = [(o.error, _name(entries[o.index])) for o in outcomes if o.error is not None]
    if refused:
        audit_entries(refused, token)
    response = jsonify(batch_body(outcomes))
    response.status_code = 207
    return response


def refuse_batch(st: HeraldState, exc: ClientError, token: ApiToken | None) -> None:
    """Audit and count a batch refused whole (a 401 or 429 is only counted, once)."""
    audit(exc, token, None)
    if exc.status not in COUNTED:
        metrics.count_refused(st.definitions.registry, exc.status, None)


def read_batch(batch_max: int, max_bytes: int) -> list[Envelope | ClientError]:
    """The entries of a batch request, each parsed on its own (an error stays with its entry)."""
    if request.mimetype not in BATCH_TYPES:
        raise UnsupportedMediaType(
            'a batch must be sent with `Content-Type: application/json` (`{"events": [...]}`) '
            "or `application/cloudevents-batch+json`",
            details={"content_type": request.content_type},
        )
    if request.headers.get("Idempotency-Key") is not None:
        raise ValidationFailed(
            "a batch has no `Idempotency-Key`: each entry has its own (`id`, or a CloudEvent's "
            "`id` and `source`)",
            details={"field": "Idempotency-Key"},
        )
    depth = state().settings.max_depth
    body = parse_json(read_body(request, max_bytes), depth + 2)
    if request.mimetype == cloudevents.BATCH:
        return cloudevents.batch_entries(body, batch_max)
    if not isinstance(body, dict) or set(body) != {"events"}:
        raise ValidationFailed(
            "a batch is a JSON object with one field, `events`: a list of events",
            details={"field": "events"},
        )
    raw_entries = body["events"]
    check_size(raw_entries, batch_max, "events")
    return [_entry(raw) for raw in raw_entries]


def count_outcomes(
    st: HeraldState, entries: list[Envelope | ClientError], outcomes: list[Outcome]
) -> None:
    """Count each entry of a batch accepted (a duplicate aside) or refused, by event name."""
    registry = st.definitions.registry
    for outcome in outcomes:
        name = _name(entries[outcome.index])
        if outcome.error is not None:
            metrics.count_refused(registry, outcome.error.status, name)
        elif outcome.answer is not None and not outcome.answer.duplicate:
            metrics.count_accepted(registry, outcome.answer.name)


def audit_entries(refused: list[tuple[ClientError, str | None]], token: ApiToken) -> None:
    """Record the refused entries of a batch in one transaction, and log them in one line."""
    log_event(
        "event.rejected",
        level=logging.WARNING,
        status=207,
        entries=len(refused),
        codes=sorted({error.code for error, _ in refused}),
        token_name=token.name,
        request_id=g.request_id,
    )
    record_rejections(refused, token.name)


def _entry(raw: Any) -> Envelope | ClientError:
    if not isinstance(raw, dict):
        return ValidationFailed(
            "each entry must be a JSON object with `name` and `payload`",
            details={"field": "entry"},
        )
    try:
        return envelope_of(raw)
    except ClientError as exc:
        return exc


def _name(entry: Envelope | ClientError) -> str | None:
    return entry.name if isinstance(entry, Envelope) else None


@bp.post("/events/<event_id>/replay")
def replay_event(event_id: str) -> Response:
    """Start an event's subscribed workflows again (``mode``: ``all`` or ``failed``)."""
    token = authorize("events:replay")
    options = _replay_options(allowed={"mode", "preview"})
    seen = visibility(token, "events")
    st = state()
    with st.sessions() as session:
        event = store.get_event(session, event_id) if _possible_id(event_id) else None
        if event is None or not seen.allows(event):
            raise NotFound(f"no event with id {event_id!r}", details={"event_id": event_id[:60]})
    result = _replay_one(st, token, event, options)
    if isinstance(result, ClientError):
        raise result
    status = 200 if options["preview"] else 202
    return ok(result, status=status, message=_replay_message([result], options["preview"]))


@bp.post("/events/replay")
def replay_events() -> Response:
    """Replay the events a filter selects (name, status, time range), or preview them."""
    token = authorize("events:replay")
    options = _replay_options(
        allowed={
            "mode",
            "preview",
            "name",
            "status",
            "since",
            "until",
            "delivery",
            "delivery_since",
            "limit",
        }
    )
    seen = visibility(token, "events")
    st = state()
    where = store.EventFilter(
        name=options["name"],
        status=options["status"],
        since=options["since"],
        until=options["until"],
        delivery=options["delivery"],
        delivery_since=options["delivery_since"],
    )
    with st.sessions() as session:
        events = store.list_events(session, where, options["limit"], visible=seen.events_clause())
        session.expunge_all()
    results: list[dict[str, Any]] = []
    for event in events:
        result = _replay_one(st, token, event, options)
        if isinstance(result, ClientError):
            results.append(
                {
                    "event_id": event.id,
                    "status": result.status,
                    "error": {
                        "code": result.code,
                        "message": result.message,
                        "details": result.details,
                    },
                }
            )
        else:
            results.append(result)
    status = 200 if options["preview"] else 202
    message = _replay_message(results, options["preview"])
    return ok({"events": len(events), "replays": results}, status=status, message=message)


def _replay_one(
    st: HeraldState, token: ApiToken, event: Event, options: dict[str, Any]
) -> dict[str, Any] | ClientError:
    """Replay one event (its own transaction, published after the commit), or why not."""
    registry = st.definitions.registry
    refusals = registry.refusals(event.name, event.payload, max_errors=st.settings.max_errors)
    if refusals:
        return SchemaValidationFailed(
            "the event's payload no longer satisfies the schema of workflow(s) "
            + ", ".join(r.workflow_id for r in refusals)
            + "; nothing was started",
            details=refusal_details(refusals),
        )
    workflow_ids = [
        r["workflow_id"] for r in plan_routes(registry.subscribers(event.name, event.payload))
    ]
    try:
        scope = st.sessions() if options["preview"] else st.sessions.begin()
        with scope as session:  # a preview's session is closed without a commit
            done = engine_replay.replay(
                session,
                st.definitions.project,
                event,
                workflow_ids,
                mode=options["mode"],
                token_name=token.name,
                request_id=g.request_id,
                now=utcnow(),
                preview=options["preview"],
            )
    except ExecutionConflict as exc:
        return Conflict(exc.message, details=exc.details)
    for message in done.publish:
        st.publisher.step(message, request_id=g.request_id)
    if not options["preview"]:
        log_event(
            "event.replayed",
            event_id=event.id,
            replay_id=done.replay_id,
            mode=done.mode,
            executions=[s["execution_id"] for s in done.started],
            token_name=token.name,
            request_id=g.request_id,
        )
    return {
        "event_id": event.id,
        "status": 200 if options["preview"] else 202,
        "replay_id": done.replay_id,
        "mode": done.mode,
        "preview": options["preview"],
        "started": done.started,
        "skipped": done.skipped,
    }


def _replay_options(allowed: set[str]) -> dict[str, Any]:
    """The replay request's body (JSON object, optional), each field checked."""
    raw = request.get_data(cache=False)
    body: Any = {}
    if raw:  # no body: the defaults; anything else must be a JSON object
        if request.mimetype != "application/json":
            raise UnsupportedMediaType(
                "a replay's options are JSON sent with `Content-Type: application/json`",
                details={"content_type": request.content_type},
            )
        body = parse_json(raw, 4)
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object", details={"field": "body"})
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ValidationFailed(
            f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
            details={"field": unknown[0]},
        )
    mode = body.get("mode", "all")
    if not isinstance(mode, str) or mode not in engine_replay.MODES:
        raise ValidationFailed("`mode` must be `all` or `failed`", details={"field": "mode"})
    preview = body.get("preview", False)
    if not isinstance(preview, bool):
        raise ValidationFailed("`preview` must be true or false", details={"field": "preview"})
    options: dict[str, Any] = {"mode": mode, "preview": preview}
    for name in ("name", "status"):
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or "\x00" in value):
            raise ValidationFailed(f"`{name}` must be a string", details={"field": name})
        options[name] = value
    if options.get("status") is not None and options["status"] not in [
        s.value for s in EventStatus
    ]:
        raise ValidationFailed(
            f"`status` must be one of {', '.join(s.value for s in EventStatus)}",
            details={"field": "status"},
        )
    delivery = body.get("delivery")
    if delivery is not None and (
        not isinstance(delivery, str) or delivery not in store.DELIVERY_STATES
    ):
        raise ValidationFailed(
            f"`delivery` must be one of {', '.join(store.DELIVERY_STATES)}",
            details={"field": "delivery"},
        )
    options["delivery"] = delivery
    for name in ("since", "until", "delivery_since"):
        options[name] = _time(body.get(name), name)
    if options["delivery_since"] and delivery is None:
        raise ValidationFailed(
            "`delivery_since` needs `delivery`", details={"field": "delivery_since"}
        )
    if options["since"] and options["until"] and options["since"] > options["until"]:
        raise ValidationFailed("`since` is after `until`", details={"field": "since"})
    limit = body.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(
            f"`limit` must be an integer from 1 to {MAX_LIMIT}", details={"field": "limit"}
        )
    options["limit"] = limit
    return options


def _time(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    error = ValidationFailed(
        f"`{name}` must be an ISO 8601 date-time such as 2026-01-31T12:00:00Z",
        details={"field": name},
    )
    if not isinstance(value, str):
        raise error
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise error from None


def _replay_message(results: list[dict[str, Any]], preview: bool) -> str:
    started = sum(len(r.get("started", [])) for r in results)
    if preview:
        return f"preview: {started} execution(s) would start; nothing was changed"
    return f"{started} execution(s) started"


def _possible_id(event_id: str) -> bool:
    return "\x00" not in event_id and len(event_id) <= 40
