"""Prometheus metrics of real processes: `herald serve` with two gunicorn workers and a
prefork `herald worker` with its node exporter, after known traffic."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from tests.app.conftest import closed_port, order
from tests.support import wait_for
from tests.workers.conftest import API_TOKEN, WorkerStarter

TOKEN = API_TOKEN


def post(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(
        url + "/api/v1/events",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def scrape(
    url: str, token: str | None = TOKEN
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a /metrics answer, by name and labels."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_api_and_worker_count_known_traffic_exactly(
    api: str, start_worker: WorkerStarter, seed_dir: Path, clean_db: Engine, queue_prefix: str
) -> None:
    port = closed_port()
    start_worker(
        concurrency=2,
        env={"HERALD_PROJECT_DIR": str(seed_dir), "HERALD_WORKER_METRICS_PORT": str(port)},
    )

    accepted = [post(api, {"name": "order.created", "payload": order()}) for _ in range(3)]
    unknown = post(api, {"name": "nobody.listens", "payload": {}})
    invalid = post(api, {"name": "order.created", "payload": {"orderId": "o_1"}})
    assert accepted == [202, 202, 202] and unknown == 202 and invalid == 422

    def all_succeeded() -> bool:
        with clean_db.connect() as conn:
            rows = conn.execute(text("SELECT status FROM executions")).scalars().all()
        return len(rows) == 12 and set(rows) == {"succeeded"}

    wait_for("the 12 executions to succeed", all_succeeded, timeout=60)

    for _ in range(4):  # requests land on either gunicorn process: each sees the sum
        seen = scrape(api + "/metrics")
        assert value(seen, "herald_events_accepted_total", event="order.created") == 3
        assert value(seen, "herald_events_accepted_total", event="other") == 1
        assert value(seen, "herald_events_refused_total", event="order.created", status="422") == 1
        assert value(seen, "herald_workers", state="alive") == 1
        for queue in ("dispatch", "steps", "agents"):  # drained: present, and zero
            assert (
                seen[("herald_queue_depth", frozenset({("queue", f"{queue_prefix}.{queue}")}))] == 0
            )

    worker = scrape(f"http://127.0.0.1:{port}/metrics", token=None)
    with clean_db.connect() as conn:
        steps = conn.execute(
            text(
                "SELECT w.workflow_id, s.task_id, count(*) FROM steps s"
                " JOIN executions w ON w.id = s.execution_id GROUP BY 1, 2"
            )
        ).all()
    assert steps, "the seed's executions ran steps"
    for workflow, task, count in steps:
        labels = {"workflow": workflow, "task": task}
        assert value(worker, "herald_step_duration_seconds_count", **labels) == count
        assert value(worker, "herald_step_attempts_total", outcome="succeeded", **labels) == count
    for workflow in ("ecommerce-order-flow", "order-processor"):
        assert value(worker, "herald_executions_started_total", workflow=workflow) == 3
        assert (
            value(worker, "herald_executions_finished_total", workflow=workflow, status="succeeded")
            == 3
        )
    assert value(worker, "herald_steps_lost_total") == 0


def test_metrics_need_a_token(api: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        scrape(api + "/metrics", token=None)
    refused.value.close()
    assert refused.value.code == 401
    assert ("herald_events_accepted_total", frozenset()) not in scrape(api + "/metrics")
