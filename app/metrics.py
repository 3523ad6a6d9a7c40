"""The API's Prometheus metrics, served at ``GET /metrics`` (:mod:`app.api.metrics`).

Today they count what the API refused without writing a row: 401 and 429
answers, by status and token name (``none`` when no token was recognised). The
client address is not a label, since its values are unbounded: the in-memory
table of :mod:`app.refusals` keeps it, and its log lines name it.
"""

from __future__ import annotations

from prometheus_client import Counter

#: 401 and 429 answers, by status and token
REFUSED = Counter(
    "herald_api_refused",
    "Requests refused with 401 (no or unknown token) or 429 (rate limited), by token.",
    ["status", "token"],
)


def count_refusal(status: int, token_name: str | None) -> None:
    """Count one 401 or 429 answer."""
    REFUSED.labels(status=str(status), token=token_name or "none").inc()
