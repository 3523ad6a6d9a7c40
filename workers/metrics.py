"""The workers' Prometheus metrics: executions, steps, sweeps; and the node's exporter.

Each counter moves only once the transaction that did the work has committed
(a rolled-back claim or settle counts nothing). Labels are bounded by the
definitions: workflow and task ids, statuses, outcomes and sweep kinds.

A Celery prefork node runs its steps in pool processes: with ``herald worker
--metrics-port N`` (:mod:`herald.multiproc`, :func:`start_exporter`) every process
of the node writes to a per-node ``PROMETHEUS_MULTIPROC_DIR`` made fresh at
start, and one HTTP exporter in the main process adds them up at each scrape.
A pool process marks itself dead when it exits (:func:`mark_dead`).
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from workflows.engine.recovery import SweepReport
from workflows.metrics import EXECUTIONS_FINISHED

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: the sweep report's lists, each a ``kind`` of ``herald_sweep_actions_total``
SWEEP_KINDS = ("events", "queued", "retries", "orphaned", "lost", "failed", "delayed", "waits")
#: from a router's milliseconds to a tool's minutes
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

EXECUTIONS_STARTED = Counter(
    "herald_executions_started",
    "Executions created by a dispatch, by workflow.",
    ["workflow"],
)
STEP_DURATION = Histogram(
    "herald_step_duration_seconds",
    "Time of one step attempt, claim to settle, by workflow and task.",
    ["workflow", "task"],
    buckets=STEP_BUCKETS,
)
STEP_ATTEMPTS = Counter(
    "herald_step_attempts",
    "Step attempts settled, by outcome (succeeded, failed, timed_out, retried, cancelled, "
    "fenced...).",
    ["workflow", "task", "outcome"],
)
STEPS_LOST = Counter(
    "herald_steps_lost",
    "Running steps the sweep found held by dead workers (or past their lease), requeued.",
)
SWEEP_ACTIONS = Counter(
    "herald_sweep_actions",
    "Rows the recovery sweep acted on, by kind.",
    ["kind"],
)


def executions_started(workflow_ids: list[str]) -> None:
    """Count executions whose creation committed."""
    for workflow_id in workflow_ids:
        EXECUTIONS_STARTED.labels(workflow=workflow_id).inc()


def step_settled(
    workflow: str, task: str, outcome: str, seconds: float, finished: str | None
) -> None:
    """Count one committed attempt, its duration, and the execution it ended (``finished``)."""
    STEP_ATTEMPTS.labels(workflow=workflow, task=task, outcome=outcome).inc()
    STEP_DURATION.labels(workflow=workflow, task=task).observe(seconds)
    if finished is not None:
        EXECUTIONS_FINISHED.labels(workflow=workflow, status=finished).inc()


def swept(report: SweepReport) -> None:
    """Count what one committed sweep pass did."""
    for kind in SWEEP_KINDS:
        done = len(getattr(report, kind))
        if done:
            SWEEP_ACTIONS.labels(kind=kind).inc(done)
    if report.pruned:
        SWEEP_ACTIONS.labels(kind="pruned").inc(report.pruned)
    lost = len(report.orphaned) + len(report.lost)
    if lost:
        STEPS_LOST.inc(lost)


def start_exporter(port: int, addr: str = "0.0.0.0") -> None:
    """Serve the node's metrics, added up over its processes, on ``port`` (a daemon thread)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(port, addr=addr, registry=registry)


def mark_dead(pid: int | None = None, **_: Any) -> None:
    """Forget the live values of a pool process that exited (its counts stay)."""
    if os.environ.get(MULTIPROC_ENV):
        mark_process_dead(pid if pid is not None else os.getpid())  # type: ignore[no-untyped-call]
