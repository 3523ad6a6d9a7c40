"""Ingestion: ``POST /api/v1/events`` throughput and latency at several client concurrencies.

The load comes from a separate process (:mod:`benchmarks.loadgen`); workers are
stopped, so the API has the machine to itself and every accepted event waits in
the database. After each level the run counts the committed rows: every 202
must have its row.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from benchmarks.cluster import Cluster
from benchmarks.errors import BenchmarkError
from benchmarks.project import E2E_EVENT
from benchmarks.results import BatchIngestionRun, IngestionRun
from benchmarks.stats import Summary
from benchmarks.store import count_events

BODY = json.dumps({"name": E2E_EVENT, "payload": {"n": 1, "label": "bench"}})


def measure_ingestion(
    cluster: Cluster,
    sessions: sessionmaker[Session],
    concurrencies: Sequence[int],
    seconds: float,
    warmup: float,
) -> tuple[list[IngestionRun], dict[str, list[float]]]:
    """One run per concurrency, and the latency samples of each (for the plot)."""
    runs, samples = [], {}
    for concurrency in concurrencies:
        with sessions() as session:
            before = count_events(session, E2E_EVENT)
        result = _loadgen(cluster, concurrency, seconds, warmup)
        cluster.check()
        with sessions() as session:
            rows = count_events(session, E2E_EVENT) - before
        statuses = {int(k): v for k, v in result["statuses"].items()}
        accepted = statuses.get(202, 0)
        latencies = result["latencies_ms"]
        runs.append(
            IngestionRun(
                concurrency=concurrency,
                seconds=seconds,
                accepted=accepted,
                failed=sum(statuses.values()) - accepted + sum(result["errors"].values()),
                per_second=len(latencies) / seconds,
                latency_ms=Summary.of(latencies),
                rows=rows,
            )
        )
        samples[f"ingestion {concurrency} clients"] = latencies
    return runs, samples


def batch_body(size: int) -> str:
    """A batch of ``size`` valid events."""
    events = [{"name": E2E_EVENT, "payload": {"n": n, "label": "bench"}} for n in range(size)]
    return json.dumps({"events": events})


def measure_batch_ingestion(
    cluster: Cluster,
    sessions: sessionmaker[Session],
    clients: int,
    batch: int,
    seconds: float,
    warmup: float,
) -> tuple[BatchIngestionRun, dict[str, list[float]]]:
    """``clients`` clients posting batches of ``batch`` events; every accepted entry counted."""
    with sessions() as session:
        before = count_events(session, E2E_EVENT)
    result = _loadgen(
        cluster,
        clients,
        seconds,
        warmup,
        url=cluster.events_url + "/batch",
        body=batch_body(batch),
        name=f"batch-{clients}",
    )
    cluster.check()
    with sessions() as session:
        rows = count_events(session, E2E_EVENT) - before
    statuses = {int(k): v for k, v in result["statuses"].items()}
    answered = statuses.get(207, 0)
    latencies = result["latencies_ms"]
    run = BatchIngestionRun(
        clients=clients,
        batch=batch,
        seconds=seconds,
        requests=answered,
        failed=sum(statuses.values()) - answered + sum(result["errors"].values()),
        per_second=len(latencies) * batch / seconds,
        latency_ms=Summary.of(latencies),
        rows=rows,
    )
    return run, {f"batch ingestion {clients} clients x {batch}": latencies}


def _loadgen(
    cluster: Cluster,
    concurrency: int,
    seconds: float,
    warmup: float,
    *,
    url: str | None = None,
    body: str = BODY,
    name: str | None = None,
) -> dict[str, Any]:
    out = cluster.env.work_dir / f"loadgen-{name or concurrency}.json"
    argv = [
        sys.executable,
        "-m",
        "benchmarks.loadgen",
        f"--url={url or cluster.events_url}",
        f"--token={cluster.env.token}",
        f"--body={body}",
        f"--concurrency={concurrency}",
        f"--seconds={seconds}",
        f"--warmup={warmup}",
        f"--out={out}",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + warmup + 60)
    if done.returncode != 0:
        raise BenchmarkError(f"the load generator failed: {done.stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result
