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
from benchmarks.results import IngestionRun
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


def _loadgen(cluster: Cluster, concurrency: int, seconds: float, warmup: float) -> dict[str, Any]:
    out = cluster.env.work_dir / f"loadgen-{concurrency}.json"
    argv = [
        sys.executable,
        "-m",
        "benchmarks.loadgen",
        f"--url={cluster.events_url}",
        f"--token={cluster.env.token}",
        f"--body={BODY}",
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
