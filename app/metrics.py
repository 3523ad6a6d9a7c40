"""The API's Prometheus metrics, served at ``GET /metrics`` (:mod:`app.api.metrics`).

They count what the API refused without writing a row (401 and 429 answers, by
status and token name, ``none`` when no token was recognised) and the events it
accepted or refused, by event name. The client address is not a label, since
its values are unbounded: the in-memory table of :mod:`app.refusals` keeps it,
and its log lines name it. Nor is an event name nobody subscribes to: clients
choose names, so such a name is counted as ``other`` (:func:`event_label`).
"""

from __future__ import annotations

from prometheus_client import Counter

from workflows.registry import TriggerRegistry

#: the label of an event name no loaded workflow subscribes to (or of no name at all)
OTHER = "other"

#: 401 and 429 answers, by status and token
REFUSED = Counter(
    "herald_api_refused",
    "Requests refused with 401 (no or unknown token) or 429 (rate limited), by token.",
    ["status", "token"],
)
#: events stored (single, batch entries, CloudEvents), by event label
EVENTS_ACCEPTED = Counter(
    "herald_events_accepted",
    "Events accepted and stored (a replayed duplicate is not counted), by event name.",
    ["event"],
)
#: events refused (a whole request, or one entry of a batch), by status and event label
EVENTS_REFUSED = Counter(
    "herald_events_refused",
    "Events refused (400, 403, 404, 409, 413, 415, 422...), by HTTP status and event name.",
    ["status", "event"],
)


def count_refusal(status: int, token_name: str | None) -> None:
    """Count one 401 or 429 answer."""
    REFUSED.labels(status=str(status), token=token_name or "none").inc()


def event_label(registry: TriggerRegistry, name: str | None) -> str:
    """The ``event`` label of ``name``: bounded by the definitions, whatever clients send.

    A name some trigger (or ``wait`` task) names exactly is its own label; a name
    only wildcard triggers match is labelled with the first such pattern
    (``order.*``); any other name is :data:`OTHER`.
    """
    if not name:
        return OTHER
    subscriptions = registry.subscribers(name)
    if registry.awaited(name) or any(s.trigger.name == name for s in subscriptions):
        return name
    patterns = sorted(s.trigger.name for s in subscriptions)
    return patterns[0] if patterns else OTHER


def count_accepted(registry: TriggerRegistry, name: str) -> None:
    """Count one event stored."""
    EVENTS_ACCEPTED.labels(event=event_label(registry, name)).inc()


def count_refused(registry: TriggerRegistry, status: int, name: str | None) -> None:
    """Count one event refused with ``status``."""
    EVENTS_REFUSED.labels(status=str(status), event=event_label(registry, name)).inc()
