"""herald against raw Celery: the ratios and differences the targets are stated in.

The targets are issue 16's (batch ingestion: issue 14's). They are reported, never
asserted: a run on a busy laptop should still finish with a report that says where
herald falls short.
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
    PeakMemory,
)
from benchmarks.stats import paired_ratio

THROUGHPUT_TARGET = 0.75
#: the worker counts the throughput target holds for (8 is reported in the scale-out)
THROUGHPUT_WORKERS = (1, 2, 4)
ADDED_MS_PER_STEP_TARGET = 1.5
END_TO_END_P50_TARGET_MS = 15.0
END_TO_END_P99_TARGET_MS = 50.0
FIRST_STEP_P50_TARGET_MS = 5.0
#: the breakdown entry of a herald latency round that the first-step target reads
FIRST_STEP = "POST to 1st step start"
INGESTION_CLIENTS = 16
INGESTION_RATE_TARGET = 2500.0
INGESTION_P99_TARGET_MS = 30.0
BATCH_RATE_TARGET = 10_000.0
RSS_RATIO_TARGET = 1.5
HERALD_WORKER = "herald worker"
CELERY_WORKER = "celery worker"


def compare(report: BenchReport) -> list[Comparison]:
    """Every comparison the measurements in ``report`` allow."""
    comparisons = throughput_comparisons(report.drains)
    for comparison in (
        added_latency(report.latency),
        end_to_end(report.latency),
        first_step_start(report.latency),
        ingestion_comparison(report.ingestion),
    ):
        if comparison is not None:
            comparisons.append(comparison)
    comparisons.extend(batch_comparison(run) for run in report.batch_ingestion)
    memory = memory_ratio(report.memory)
    if memory is not None:
        comparisons.append(memory)
    return comparisons


def throughput_comparisons(drains: list[DrainRound]) -> list[Comparison]:
    """Steps per second, herald / raw Celery, per worker count, paired round by round."""
    by_workers: dict[int, dict[int, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for drain in drains:
        by_workers[drain.workers][drain.round][drain.system] = drain.steps_per_second
    comparisons = []
    for workers, rounds in sorted(by_workers.items()):
        if workers not in THROUGHPUT_WORKERS:
            continue
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


def end_to_end(rounds: list[LatencyRound]) -> Comparison | None:
    """A 3-step run, POST to succeeded: herald's p50 and p99 (medians of the rounds')."""
    herald = [r.end_to_end_ms for r in rounds if r.system == "herald" and r.end_to_end_ms.count]
    celery = [r.end_to_end_ms for r in rounds if r.system == "celery" and r.end_to_end_ms.count]
    if not herald:
        return None
    p50 = statistics.median(s.p50 for s in herald)
    p99 = statistics.median(s.p99 for s in herald)
    return Comparison(
        name=f"3-step run, POST to succeeded (p99 {p99:.1f} ms)",
        herald=p50,
        celery=_median([s.p50 for s in celery]),
        value=p50,
        unit="ms p50",
        target=f"p50 <= {END_TO_END_P50_TARGET_MS:g} ms, p99 <= {END_TO_END_P99_TARGET_MS:g} ms",
        met=p50 <= END_TO_END_P50_TARGET_MS and p99 <= END_TO_END_P99_TARGET_MS,
    )


def first_step_start(rounds: list[LatencyRound]) -> Comparison | None:
    """POST to the first step's start, herald's median (the median of the rounds')."""
    medians = [r.breakdown_ms[FIRST_STEP] for r in rounds if FIRST_STEP in r.breakdown_ms]
    if not medians:
        return None
    value = statistics.median(medians)
    return Comparison(
        name="POST to the first step's start (p50)",
        herald=value,
        celery=None,
        value=value,
        unit="ms",
        target=f"<= {FIRST_STEP_P50_TARGET_MS:g} ms",
        met=value <= FIRST_STEP_P50_TARGET_MS,
    )


def ingestion_comparison(runs: list[IngestionRun]) -> Comparison | None:
    """Ingestion at 16 clients; without a 16-client run, the best rate within the p99 target."""
    if not runs:
        return None
    at_target = [r for r in runs if r.concurrency == INGESTION_CLIENTS]
    within = [r for r in runs if r.latency_ms.p99 <= INGESTION_P99_TARGET_MS]
    best = at_target[0] if at_target else max(within or runs, key=lambda r: r.per_second)
    met = (
        best.concurrency == INGESTION_CLIENTS
        and best.per_second >= INGESTION_RATE_TARGET
        and best.latency_ms.p99 <= INGESTION_P99_TARGET_MS
    )
    return Comparison(
        name=f"ingestion, {best.concurrency} clients (p99 {best.latency_ms.p99:.1f} ms)",
        herald=best.per_second,
        celery=None,
        value=best.per_second,
        unit="events/s",
        target=f">= {INGESTION_RATE_TARGET:,.0f}/s at {INGESTION_CLIENTS} clients, "
        f"p99 <= {INGESTION_P99_TARGET_MS:g} ms, every 202 committed",
        met=met and all(r.durable for r in runs),
    )


def memory_ratio(memory: list[PeakMemory]) -> Comparison | None:
    """Peak RSS of a herald worker process over a raw Celery worker's (largest of each pool)."""
    by_role = {m.role: m.max_rss_mb for m in memory}
    herald, celery = by_role.get(HERALD_WORKER), by_role.get(CELERY_WORKER)
    if herald is None or celery is None or celery <= 0:
        return None
    value = herald / celery
    return Comparison(
        name="worker peak RSS (largest process, VmHWM)",
        herald=herald,
        celery=celery,
        value=value,
        unit="herald / celery",
        target=f"<= {RSS_RATIO_TARGET:g}",
        met=value <= RSS_RATIO_TARGET,
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
