"""Accepting a batch of events: each entry on its own, all of them in one statement.

:func:`accept_batch` takes the entries of ``POST /api/v1/events/batch`` already
parsed (an :class:`~app.envelope.Envelope` or the error that refused it), checks
each as a single event would be (the token may send its name, its payload
satisfies every matching trigger, its idempotency key), inserts every accepted
one in one multi-row ``INSERT ... ON CONFLICT DO NOTHING`` committed on its own,
then publishes one dispatch message for them all. An entry refused changes
nothing; the others are accepted as if sent alone. Only an entry whose key is
already taken costs a transaction of its own (the rare path of a single event).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.auth import may_send
from app.envelope import Envelope
from app.errors import ClientError, Conflict, Forbidden, SchemaValidationFailed, ValidationFailed
from app.intake import (
    Answer,
    RequestMeta,
    accept_taken_key,
    answered_workflows,
    event_trace_id,
    filtered_json,
    plan_routes,
    refusal_details,
)
from app.logs import log_event
from app.state import HeraldState
from workflows.ids import new_id
from workflows.model import EventStatus
from workflows.registry import Filtered, TriggerRegistry
from workflows.settings import ApiToken
from workflows.store import events as store
from workflows.store.db import autocommit


@dataclass(frozen=True)
class Outcome:
    """What became of one entry: its answer, or the error that refused it."""

    index: int
    answer: Answer | None = None
    error: ClientError | None = None

    def body(self) -> dict[str, Any]:
        """One entry of the 207 answer."""
        if self.answer is not None:
            return {
                "index": self.index,
                "status": 202,
                "event_id": self.answer.event_id,
                "name": self.answer.name,
                "workflows": self.answer.workflows,
                "duplicate": self.answer.duplicate,
                "trace_id": self.answer.trace_id,
                **({"filtered": self.answer.filtered} if self.answer.filtered else {}),
            }
        assert self.error is not None
        return {
            "index": self.index,
            "status": self.error.status,
            "error": {
                "code": self.error.code,
                "message": self.error.message,
                "details": self.error.details,
            },
        }


def check_size(raw_entries: Any, batch_max: int, field: str) -> None:
    """400 unless ``raw_entries`` is a list of 1 to ``batch_max`` entries."""
    if not isinstance(raw_entries, list) or not raw_entries:
        raise ValidationFailed(f"`{field}` must be a non-empty list", details={"field": field})
    if len(raw_entries) > batch_max:
        raise ValidationFailed(
            f"a batch holds at most {batch_max} events (HERALD_BATCH_MAX); this one has "
            f"{len(raw_entries)}",
            details={"field": field, "limit": batch_max},
        )


def batch_body(outcomes: list[Outcome]) -> dict[str, Any]:
    """The 207 answer: one result per entry, in the order sent."""
    accepted = sum(1 for o in outcomes if o.answer is not None)
    message = f"{accepted} of {len(outcomes)} event(s) accepted"
    return {
        "success": True,
        "message": message,
        "data": {
            "accepted": accepted,
            "refused": len(outcomes) - accepted,
            "results": [o.body() for o in outcomes],
        },
    }


def accept_batch(
    st: HeraldState,
    token: ApiToken,
    entries: list[Envelope | ClientError],
    *,
    client_addr: str | None,
    request_id: str,
) -> list[Outcome]:
    """Check every entry, insert the accepted ones in one statement, publish them together."""
    registry = st.definitions.registry  # one snapshot for the whole batch
    outcomes: list[Outcome | None] = [None] * len(entries)
    publish = st.publisher.available()
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    planned: list[tuple[int, Envelope, dict[str, Any]]] = []
    first_with_key: dict[str, int] = {}
    repeats: list[tuple[int, Envelope, int]] = []
    for index, entry in enumerate(entries):
        if isinstance(entry, ClientError):
            outcomes[index] = Outcome(index, error=entry)
            continue
        refused = _refused(st, registry, token, entry)
        if refused is not None:
            outcomes[index] = Outcome(index, error=refused)
            continue
        if entry.key is not None:
            if entry.key in first_with_key:  # the same key twice in one batch
                repeats.append((index, entry, first_with_key[entry.key]))
                continue
            first_with_key[entry.key] = index
        filtered: list[Filtered] = []
        routes = plan_routes(registry.subscribers(entry.name, entry.payload, filtered=filtered))
        values: dict[str, Any] = {
            "id": new_id("evt"),
            "name": entry.name,
            "payload": entry.payload,
            "status": EventStatus.ACCEPTED if routes else EventStatus.UNROUTED,
            "routes": routes,
            "token_name": token.name,
            "client_addr": client_addr[:64] if client_addr else None,
            "request_id": request_id,
            "idempotency_key": entry.key,
            "request_hash": entry.body_hash,
            "received_at": now,
            "publish_count": 1 if routes and publish else 0,
            "filtered": [filtered_json(f) for f in filtered] or None,
            "trace_id": event_trace_id(entry),
        }
        rows.append(values)
        planned.append((index, entry, values))
    with autocommit(st.engine) as connection:
        inserted = store.insert_events(connection, rows)
    to_dispatch: list[str] = []
    for index, entry, values in planned:
        answer: Answer | None = None
        if values["id"] not in inserted:
            meta = RequestMeta(token.name, client_addr, request_id, event_id=values["id"])
            try:
                answer = accept_taken_key(st, entry, meta, values)
            except Conflict as exc:  # the key was used before with another body
                outcomes[index] = Outcome(index, error=exc)
                continue
        if answer is None:  # stored now
            answer = Answer(
                values["id"],
                entry.name,
                answered_workflows(values["routes"]),
                False,
                filtered=values["filtered"] or [],
                trace_id=values["trace_id"],
            )
            if values["routes"] and values["publish_count"]:
                to_dispatch.append(values["id"])
        outcomes[index] = Outcome(index, answer=answer)
    for index, entry, first in repeats:
        outcomes[index] = _repeat(index, entry, entries[first], outcomes[first])
    done = [o for o in outcomes if o is not None]
    assert len(done) == len(entries), "every entry has an outcome"
    if to_dispatch:
        st.publisher.dispatch_many(to_dispatch, request_id=request_id)
    if any(v["routes"] and not v["publish_count"] for _, _, v in planned):
        log_event(
            "event.publish_failed",
            level=logging.WARNING,
            request_id=request_id,
            reason="the broker refused moments ago; left to the recovery sweep",
        )
    log_event(
        "events.batch_accepted",
        request_id=request_id,
        token_name=token.name,
        entries=len(entries),
        accepted=sum(1 for o in done if o.answer is not None),
        dispatched=len(to_dispatch),
    )
    return done


def _refused(
    st: HeraldState, registry: TriggerRegistry, token: ApiToken, entry: Envelope
) -> ClientError | None:
    """The error a single event would get for this entry's name or payload; ``None`` if fine."""
    if not may_send(token, entry.name):
        return Forbidden(
            f"token {token.name!r} may not send events named {entry.name!r}",
            details={"field": "name", "allowed": list(token.events)},
        )
    refusals = registry.refusals(entry.name, entry.payload, max_errors=st.settings.max_errors)
    if refusals:
        details = refusal_details(refusals)
        failing = ", ".join(d["workflow_id"] for d in details)
        return SchemaValidationFailed(
            f"the payload does not satisfy the schema of workflow(s) {failing}; "
            "nothing was started",
            details=details,
        )
    return None


def _repeat(
    index: int, entry: Envelope, first: Envelope | ClientError, outcome: Outcome | None
) -> Outcome:
    """An entry repeating an earlier entry's key: its duplicate, or 409 with another body."""
    assert isinstance(first, Envelope) and outcome is not None
    if outcome.answer is None:  # the first entry with this key was refused: so is this one
        return Outcome(index, error=outcome.error)
    if first.body_hash != entry.body_hash:
        return Outcome(
            index,
            error=Conflict(
                "this idempotency key was already used by this token with a different body",
                details={"field": "id", "event_id": outcome.answer.event_id},
            ),
        )
    original = outcome.answer
    return Outcome(
        index,
        answer=Answer(
            original.event_id, original.name, original.workflows, True, trace_id=original.trace_id
        ),
    )
