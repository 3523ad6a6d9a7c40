"""herald against raw Celery: the ratios and differences the targets are stated in.

Targets are reported, never asserted: a run on a busy laptop should still finish
with a report that says where herald falls short.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from benchmarks.results import (
    BatchIngestionRun,
    BenchReport,
    Comparison,
    DrainRound,
    IngestionRun,
    LatencyRound,
)
from benchmarks.stats import paired_ratio

THROUGHPUT_TARGET = 0.70
ADDED_MS_PER_STEP_TARGET = 2.0
INGESTION_RATE_TARGET = 1000.0
INGESTION_P99_TARGET_MS = 50.0
BATCH_RATE_TARGET = 10_000.0


def compare(report: BenchReport) -> list[Comparison]:
    """Every comparison the measurements in ``report`` allow."""
    comparisons = throughput_comparisons(report.drains)
    added = added_latency(report.latency)
    if added is not None:
        comparisons.append(added)
    ingestion = ingestion_comparison(report.ingestion)
    if ingestion is not None:
        comparisons.append(ingestion)
    comparisons.extend(batch_comparison(run) for run in report.batch_ingestion)
    return comparisons


def throughput_comparisons(drains: list[DrainRound]) -> list[Comparison]:
    """Steps per second, herald / raw Celery, per worker count, paired round by round."""
    by_workers: dict[int, dict[int, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for drain in drains:
        by_workers[drain.workers][drain.round][drain.system] = drain.steps_per_second
    comparisons = []
    for workers, rounds in sorted(by_workers.items()):
        pairs = [(r["herald"], r["celery"]) for r in rounds.values() if len(r) == 2]
        herald = _median([r["herald"] for r in rounds.values() if "herald" in r])
        celery = _median([r["celery"] for r in rounds.values() if "celery" in r])
        value = paired_ratio(pairs)
        comparisons.append(
            Comparison(
                name=f"step throughput, {workers} worker process(es)",
                herald=herald,
                celery=celery,
                value=value,
                unit="herald / celery",
                target=f">= {THROUGHPUT_TARGET:.2f}",
                met=None if value is None else value >= THROUGHPUT_TARGET,
            )
        )
    return comparisons


def added_latency(rounds: list[LatencyRound]) -> Comparison | None:
    """Milliseconds herald adds per step over a raw Celery hop (median step, paired rounds)."""
    by_round: dict[int, dict[str, float]] = defaultdict(dict)
    for r in rounds:
        if r.per_step_ms.count:
            by_round[r.round][r.system] = r.per_step_ms.p50
    pairs = [(r["herald"], r["celery"]) for r in by_round.values() if len(r) == 2]
    if not pairs:
        return None
    value = statistics.median(h - c for h, c in pairs)
    return Comparison(
        name="added latency per step (p50)",
        herald=statistics.median(h for h, _ in pairs),
        celery=statistics.median(c for _, c in pairs),
        value=value,
        unit="ms (herald - celery)",
        target=f"<= {ADDED_MS_PER_STEP_TARGET:g} ms",
        met=value <= ADDED_MS_PER_STEP_TARGET,
    )


def ingestion_comparison(runs: list[IngestionRun]) -> Comparison | None:
    """The best ingestion rate whose p99 stays under the target, else the best rate at all."""
    if not runs:
        return None
    within = [r for r in runs if r.latency_ms.p99 < INGESTION_P99_TARGET_MS]
    best = max(within or runs, key=lambda r: r.per_second)
    met = best.per_second >= INGESTION_RATE_TARGET and best.latency_ms.p99 < INGESTION_P99_TARGET_MS
    return Comparison(
        name=f"ingestion, {best.concurrency} clients (p99 {best.latency_ms.p99:.1f} ms)",
        herald=best.per_second,
        celery=None,
        value=best.per_second,
        unit="events/s",
        target=f">= {INGESTION_RATE_TARGET:g}/s, p99 < {INGESTION_P99_TARGET_MS:g} ms",
        met=met and all(r.durable for r in runs),
    )


def batch_comparison(run: BatchIngestionRun) -> Comparison:
    """Batch ingestion against its rate target; not met if an accepted entry has no row."""
    return Comparison(
        name=f"batch ingestion, {run.clients} clients x {run.batch} events "
        f"(p99 {run.latency_ms.p99:.1f} ms a batch)",
        herald=run.per_second,
        celery=None,
        value=run.per_second,
        unit="events/s",
        target=f">= {BATCH_RATE_TARGET:,.0f}/s, every entry committed",
        met=run.per_second >= BATCH_RATE_TARGET and run.durable,
    )


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None
