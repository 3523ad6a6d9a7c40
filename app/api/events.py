"""The Events API: ``POST /api/v1/events`` (intake) and its read side.

A refused event is audited in the ``rejections`` table and logged, except a 401
or a 429: those are counted in memory and logged at a bounded rate
(:mod:`app.refusals`), since anyone can send them as fast as they like. A 503
cannot be audited since the database is the thing that is down, so it is only
logged.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from app import cloudevents, metrics
from app.api.common import (
    authorize,
    caller,
    choice_param,
    iso,
    ok,
    page,
    page_params,
    refuse_unknown_query,
    time_param,
)
from app.auth import require_event, require_scope, visibility
from app.envelope import read_envelope
from app.errors import ClientError, NotFound, ValidationFailed
from app.intake import RequestMeta, accept, dry_run
from app.logs import log_event
from app.refusals import COUNTED
from app.state import state
from workflows.model import EventStatus
from workflows.settings import ApiToken
from workflows.store import events as store
from workflows.store.models import Event

bp = Blueprint("events", __name__)


@bp.post("/events")
def post_event() -> Response:
    """Accept an event: 202 once it is committed, or the contract's error."""
    st = state()
    token: ApiToken | None = None
    name: str | None = None
    dry = batch = False
    try:
        token = caller()
        require_scope(token, "events:write")
        st.limiter.check(token.name)
        refuse_unknown_query()
        dry = choice_param("dry_run", ["true", "false"]) == "true"
        if request.mimetype == cloudevents.BATCH:
            if dry:
                raise ValidationFailed(
                    "a dry run takes one event, not a batch", details={"field": "dry_run"}
                )
            from app.api.intake import batch_of

            batch = True  # it audits and counts its own refusals
            return batch_of(st, token)
        if cloudevents.is_cloudevent(request):
            envelope = cloudevents.read_cloudevent(
                request, st.settings.max_body_bytes, st.settings.max_depth
            )
        else:
            envelope = read_envelope(request, st.settings.max_body_bytes, st.settings.max_depth)
        name = envelope.name
        meta = RequestMeta(token.name, request.remote_addr, g.request_id)
        log_event(
            "event.received",
            event_id=meta.event_id,
            event_name=name,
            request_id=g.request_id,
            token_name=token.name,
            idempotency_key=envelope.key is not None,
        )
        require_event(token, name)
        if dry:
            plan = dry_run(st, envelope, meta)
            return ok(plan, message=plan["message"])
        answer = accept(st, envelope, meta)
    except ClientError as exc:
        # a dry run writes nothing, not even the audit of its refusal
        if not (dry or batch):
            audit(exc, token, name)
            if exc.status not in COUNTED:
                metrics.count_refused(st.definitions.registry, exc.status, name)
        raise
    if not answer.duplicate:
        metrics.count_accepted(st.definitions.registry, answer.name)
    response = jsonify(answer.body())
    response.status_code = 202
    return response


def audit(exc: ClientError, token: ApiToken | None, name: str | None) -> None:
    """Record and log a refused event; a database outage here loses only the audit row.

    A 401 or 429 is only counted (:class:`~app.refusals.Refusals`).
    """
    if exc.status in COUNTED:
        state().refusals.count(exc.status, token.name if token else None, request.remote_addr)
        return
    log_event(
        "event.rejected",
        level=logging.WARNING,
        status=exc.status,
        code=exc.code,
        reason=exc.message,
        event_name=name,
        token_name=token.name if token else None,
        request_id=g.request_id,
    )
    record_rejections([(exc, name)], token.name if token else None)


def record_rejections(refused: list[tuple[ClientError, str | None]], token: str | None) -> None:
    """Write one audit row per refusal, in one transaction; an outage loses only the rows."""
    try:
        with state().sessions.begin() as session:
            for error, name in refused:
                store.record_rejection(
                    session,
                    status_code=error.status,
                    code=error.code,
                    message=error.message,
                    details=error.details,
                    event_name=name,
                    token_name=token,
                    client_addr=request.remote_addr,
                    request_id=g.request_id,
                )
    except SQLAlchemyError as db_exc:
        log_event(
            "event.rejection_not_recorded",
            level=logging.ERROR,
            request_id=g.request_id,
            reason=db_exc.__class__.__name__,
        )


@bp.get("/events/<event_id>")
def get_event(event_id: str) -> Response:
    """One event with its planned executions and, where they exist, their status.

    An event the token may not see is "not found", as one that does not exist.
    """
    seen = visibility(authorize("events:read"), "events")
    with state().sessions() as session:
        event = store.get_event(session, event_id)
        if event is None or not seen.allows(event):
            raise NotFound(f"no event with id {event_id!r}", details={"event_id": event_id})
        ids = [r["execution_id"] for r in event.routes]
        statuses = store.execution_statuses(session, ids)
        shown = event_json(event, statuses)
        shown["deliveries"] = store.deliveries(session, event)
        shown["replays"] = [
            {
                "id": r.id,
                "mode": r.mode,
                "token_name": r.token_name,
                "at": iso(r.at),
                "executions": r.executions,
            }
            for r in store.replays_of(session, event.id)
        ]
    return ok(shown)


@bp.get("/events")
def list_events() -> Response:
    """Events, newest first, filtered by name, status and time; cursor-paginated.

    Only those the token may see: its own (every token's with ``events:read:all``),
    with names its patterns match.
    """
    seen = visibility(authorize("events:read"), "events")
    limit, before_id = page_params()
    where = store.EventFilter(
        name=request.args.get("name"),
        status=choice_param("status", [s.value for s in EventStatus]),
        since=time_param("since"),
        until=time_param("until"),
        before_id=before_id,
        delivery=choice_param("delivery", list(store.DELIVERY_STATES)),
        delivery_since=time_param("delivery_since"),
    )
    if where.delivery_since and where.delivery is None:
        raise ValidationFailed(
            "`delivery_since` needs `delivery` (the state the delivery reached)",
            details={"field": "delivery_since"},
        )
    if where.since and where.until and where.since > where.until:
        raise ValidationFailed("`since` is after `until`", details={"field": "since"})
    with state().sessions() as session:
        rows = store.list_events(session, where, limit + 1, visible=seen.events_clause())
    kept, next_cursor = page(rows, limit, key=lambda e: e.id)
    return ok({"events": [event_json(e) for e in kept], "next_cursor": next_cursor})


def event_json(event: Event, statuses: dict[str, str] | None = None) -> dict[str, Any]:
    """An event as the API shows it; with ``statuses``, each route's execution status."""
    routes = []
    for route in event.routes:
        shown = {
            "workflow_id": route["workflow_id"],
            "version": route.get("version", ""),
            "execution_id": route["execution_id"],
            "trigger": route.get("trigger", event.name),
        }
        if statuses is not None:
            shown["execution_status"] = statuses.get(route["execution_id"])
        routes.append(shown)
    return {
        "id": event.id,
        "name": event.name,
        "status": event.status,
        "payload": event.payload,
        "routes": routes,
        "token_name": event.token_name,
        "request_id": event.request_id,
        "idempotency_key": event.idempotency_key,
        "received_at": iso(event.received_at),
        "dispatched_at": iso(event.dispatched_at),
        "publish_count": event.publish_count,
        "trace_id": event.trace_id,
    }
