"""Accepting an event: validate, deduplicate, store, then publish after the commit.

:func:`accept` takes a well-formed :class:`~app.envelope.Envelope`, validates the
payload against every subscribed workflow (422), applies the idempotency key
(duplicate or 409), commits the event with its planned executions in one
transaction (a single autocommitted INSERT for a new event, shared with concurrent
requests: :mod:`app.groupcommit`) and, after the commit, publishes its dispatch.
Nothing here compiles a schema or reads a file per request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from app.envelope import Envelope
from app.errors import Conflict, SchemaValidationFailed
from app.logs import log_event
from app.state import HeraldState
from app.waits import insert_and_resume
from workflows import tracing
from workflows.ids import new_id
from workflows.model import EventStatus
from workflows.registry import Filtered, Refusal, TriggerRegistry
from workflows.store import events as store
from workflows.store.models import Event


@dataclass(frozen=True)
class RequestMeta:
    """Who sent the request and how to find it in the logs."""

    token_name: str
    client_addr: str | None
    request_id: str
    #: the id the event gets if it is accepted (given at receipt, so every log line has it)
    event_id: str = field(default_factory=lambda: new_id("evt"))


@dataclass(frozen=True)
class Answer:
    """The 202 answer to an accepted (or replayed) event."""

    event_id: str
    name: str
    workflows: list[dict[str, str]]
    duplicate: bool
    #: the waiting steps it resumed: [{"execution_id", "step_id", "task_id"}]
    resumed: list[dict[str, str]] = field(default_factory=list)
    #: subscribers whose trigger filter turned it away: [{"workflow_id", "trigger", "reason"}]
    filtered: list[dict[str, str]] = field(default_factory=list)
    #: the W3C trace the event belongs to (None for an event stored before traces)
    trace_id: str | None = None

    @property
    def message(self) -> str:
        """What happened, in words (a replay repeats it: only ``duplicate`` differs)."""
        if not self.workflows and self.filtered:
            return (
                f"event accepted; the filters of every workflow subscribed to {self.name!r} "
                "turned it away (stored as unrouted)"
            )
        if not self.workflows:
            return (
                f"event accepted; no workflow is subscribed to {self.name!r} (stored as unrouted)"
            )
        return f"event accepted; {len(self.workflows)} workflow(s) will run"

    def body(self) -> dict[str, Any]:
        """The response body of the contract."""
        data: dict[str, Any] = {
            "event_id": self.event_id,
            "message": self.message,
            "name": self.name,
            "workflows": self.workflows,
            "resumed": self.resumed,
            "duplicate": self.duplicate,
            "trace_id": self.trace_id,
        }
        if self.filtered:
            data["filtered"] = self.filtered
        return {
            "success": True,
            "message": self.message,
            "event_id": self.event_id,
            "trace_id": self.trace_id,
            "data": data,
        }


def check_payload(st: HeraldState, envelope: Envelope, meta: RequestMeta) -> TriggerRegistry:
    """422 unless the payload satisfies every matching trigger; the registry snapshot used."""
    registry = st.definitions.registry  # one snapshot for the whole request
    refusals = registry.refusals(envelope.name, envelope.payload, max_errors=st.settings.max_errors)
    if refusals:
        details = refusal_details(refusals)
        log_event(
            "event.validation_failed",
            event_id=meta.event_id,
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
    return registry


def dry_run(st: HeraldState, envelope: Envelope, meta: RequestMeta) -> dict[str, Any]:
    """What accepting the event would do, and why; reads, never writes or publishes.

    The payload is checked as for :func:`accept` (422); a key already used by this
    token is looked up (a read) to say whether the event would be a duplicate or a 409.
    """
    registry = check_payload(st, envelope, meta)
    filtered: list[Filtered] = []
    subscribed = registry.subscribers(envelope.name, envelope.payload, filtered=filtered)
    would_run = []
    for route in plan_routes(subscribed):
        trigger = route["trigger"]
        how = "is the event's name" if trigger == envelope.name else "matches the name"
        would_run.append(
            {
                "workflow_id": route["workflow_id"],
                "version": route["version"],
                "trigger": trigger,
                "reason": f"trigger {trigger!r} {how}; the payload satisfies every matching "
                "trigger's schema",
            }
        )
    duplicate_of: str | None = None
    conflict = False
    if envelope.key is not None:
        with st.sessions() as session:
            existing = store.find_by_idempotency_key(session, meta.token_name, envelope.key)
            if existing is not None and not _expired(existing, st.settings.idempotency_ttl_seconds):
                duplicate_of = existing.id
                conflict = existing.request_hash != envelope.body_hash
    if conflict:
        message = (
            "dry run: this idempotency key was used with another body; the event would get 409"
        )
    elif duplicate_of is not None:
        message = f"dry run: a duplicate of {duplicate_of}; nothing would start"
    elif would_run:
        message = f"dry run: {len(would_run)} workflow(s) would run; nothing was stored"
    elif filtered:
        message = (
            "dry run: the filters of every subscribed workflow turn it away; the event "
            "would be stored as unrouted"
        )
    else:
        message = (
            f"dry run: no workflow is subscribed to {envelope.name!r}; the event would be "
            "stored as unrouted"
        )
    return {
        "dry_run": True,
        "message": message,
        "name": envelope.name,
        "workflows": [] if duplicate_of else would_run,
        "filtered": [filtered_json(f) for f in filtered],
        "duplicate_of": duplicate_of,
        "conflict": conflict,
    }


def accept(st: HeraldState, envelope: Envelope, meta: RequestMeta) -> Answer:
    """Validate, deduplicate and store the event, then publish its dispatch after the commit."""
    registry = check_payload(st, envelope, meta)
    filtered: list[Filtered] = []
    routes = plan_routes(registry.subscribers(envelope.name, envelope.payload, filtered=filtered))
    event_id = meta.event_id
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
    trace_id = values["trace_id"] = event_trace_id(envelope)
    turned_away = [filtered_json(f) for f in filtered]
    values["filtered"] = turned_away or None  # NULL: nothing filtered (delivery records read it)
    # A new event is one INSERT committed on its own, shared with the new events of concurrent
    # requests (app.groupcommit), its dispatch published once committed, with theirs (or in
    # one transaction with the waits it resumes, when some wait awaits its name: app.waits).
    inserted, resumed = insert_and_resume(st, values, request_id=meta.request_id, dispatch=publish)
    if not inserted:
        replayed = accept_taken_key(st, envelope, meta, values)
        if replayed is not None:
            return replayed
    workflows = answered_workflows(routes)
    if routes:
        log_event(
            "event.routed",
            event_id=event_id,
            event_name=envelope.name,
            request_id=meta.request_id,
            workflows=[r["workflow_id"] for r in routes],
        )
        if publish:
            if not inserted:  # stored by accept_taken_key (an expired key, freed)
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
    return Answer(
        event_id=event_id,
        name=envelope.name,
        workflows=workflows,
        duplicate=False,
        resumed=resumed,
        filtered=turned_away,
        trace_id=trace_id,
    )


def event_trace_id(envelope: Envelope) -> str | None:
    """The trace an accepted event joins: its CloudEvent's ``traceparent``, else the request's."""
    parent = tracing.parse(envelope.traceparent)
    return parent.trace_id if parent is not None else tracing.current_trace_id()


def accept_taken_key(
    st: HeraldState, envelope: Envelope, meta: RequestMeta, values: dict[str, Any]
) -> Answer | None:
    """The key is taken: the original answer, or ``None`` once the event is stored anew.

    In one transaction: insert again (the key may have been freed meanwhile), else
    replay an unexpired key, else free the expired key and insert.
    """
    assert envelope.key is not None, "only an idempotency key can conflict"
    with st.sessions.begin() as session:
        if store.insert_event(session, values):
            return None
        existing = store.find_by_idempotency_key(session, meta.token_name, envelope.key)
        assert existing is not None, "the conflicting event vanished"
        if not _expired(existing, st.settings.idempotency_ttl_seconds):
            return _replayed(existing, envelope, meta)
        store.release_idempotency_key(session, existing.id, envelope.key)
        if not store.insert_event(session, values):
            # a concurrent request re-used the expired key first: answer as its duplicate
            winner = store.find_by_idempotency_key(session, meta.token_name, envelope.key)
            assert winner is not None, "the conflicting event vanished"
            return _replayed(winner, envelope, meta)
    return None


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
                # the trigger that matched: the name itself or a wildcard pattern
                "trigger": subscription.trigger.name,
            }
        )
    return routes


def filtered_json(filtered: Filtered) -> dict[str, str]:
    """A subscriber a trigger filter turned away, as the answers show it."""
    return {
        "workflow_id": filtered.workflow_id,
        "trigger": filtered.trigger,
        "reason": filtered.reason,
    }


def answered_workflows(routes: list[dict[str, str]]) -> list[dict[str, str]]:
    """The ``workflows`` of an answer: each planned execution and the trigger that matched."""
    return [
        {
            "workflow_id": r["workflow_id"],
            "execution_id": r["execution_id"],
            "trigger": r.get("trigger", ""),
        }
        for r in routes
    ]


def refusal_details(refusals: list[Refusal]) -> list[dict[str, Any]]:
    """422 details: one entry per failing workflow, each error with its JSON pointer path.

    At most ``HERALD_MAX_ERRORS`` errors per workflow; ``more_errors`` counts the
    others found, all of them when ``more_errors_exact``, else at least that many.
    """
    return [
        {
            "workflow_id": refusal.workflow_id,
            "errors": [{"path": e.path, "message": e.message} for e in refusal.errors],
            "more_errors": refusal.more,
            "more_errors_exact": refusal.exact,
        }
        for refusal in refusals
    ]


def replay(existing: Event, envelope: Envelope) -> Answer:
    """The original answer for a replayed key, or 409 if the body differs."""
    if existing.request_hash != envelope.body_hash:
        raise Conflict(
            "this idempotency key was already used by this token with a different body",
            details={"field": "id", "event_id": existing.id},
        )
    return Answer(
        existing.id,
        existing.name,
        answered_workflows(existing.routes),
        duplicate=True,
        resumed=existing.resumed or [],
        trace_id=existing.trace_id,
    )


def _replayed(existing: Event, envelope: Envelope, meta: RequestMeta) -> Answer:
    """:func:`replay`, logged under the original event's id."""
    answer = replay(existing, envelope)
    log_event(
        "event.duplicate",
        event_id=existing.id,
        event_name=existing.name,
        request_id=meta.request_id,
    )
    return answer


def _expired(event: Event, ttl_seconds: int) -> bool:
    return store.as_utc(event.received_at) < datetime.now(UTC) - timedelta(seconds=ttl_seconds)
