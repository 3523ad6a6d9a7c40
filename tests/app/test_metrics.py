"""GET /metrics: 401 and 429 answers counted by status and token, readable by Prometheus."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from workflows.settings import ApiToken

SENDER = ApiToken("sender", "sender-secret", frozenset({"events:write"}))
SCRAPER = ApiToken("scraper", "scraper-secret", frozenset({"metrics:read"}))


def _refused(text: str) -> dict[tuple[str, str], float]:
    """``{(status, token): count}`` from the text format."""
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "herald_api_refused":
            for sample in family.samples:
                if sample.name == "herald_api_refused_total":
                    counts[(sample.labels["status"], sample.labels["token"])] = sample.value
    return counts


def test_refusals_are_counted_by_status_and_token_and_scraped_with_the_metrics_scope(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(api_tokens=(SENDER, SCRAPER), rate_limit_per_second=1.0)
    client = app.test_client()
    scrape = {"Authorization": f"Bearer {SCRAPER.secret}"}
    # counters live as long as the process: start from what other tests left
    before = {
        key: REGISTRY.get_sample_value(
            "herald_api_refused_total", {"status": key[0], "token": key[1]}
        )
        or 0.0
        for key in (("401", "none"), ("429", "sender"))
    }

    for _ in range(3):
        assert client.post("/api/v1/events", json={"name": "a.b"}).status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert client.post("/api/v1/events", json={"name": "a.b"}, headers=bad).status_code == 401
    sender = {"Authorization": f"Bearer {SENDER.secret}"}
    statuses = [
        client.post("/api/v1/events", json={"name": "a.b"}, headers=sender).status_code
        for _ in range(4)
    ]
    limited = statuses.count(429)
    assert limited >= 1

    answer = client.get("/metrics", headers=scrape)
    assert answer.status_code == 200
    assert answer.mimetype == "text/plain"
    after = _refused(answer.get_data(as_text=True))
    grown = {key: after.get(key, 0) - before.get(key, 0) for key in after}
    assert grown.get(("401", "none")) == 4
    assert grown.get(("429", "sender")) == limited
    assert "not-a-token" not in answer.get_data(as_text=True)


def test_metrics_need_the_metrics_scope(make_app: Callable[..., Flask]) -> None:
    client = make_app(api_tokens=(SENDER, SCRAPER)).test_client()
    assert client.get("/metrics").status_code == 401
    assert (
        client.get("/metrics", headers={"Authorization": f"Bearer {SENDER.secret}"}).status_code
        == 403
    )
