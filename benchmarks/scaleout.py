"""Scale-out: steps per second by worker count, and where and why each curve flattens.

The drains run at 1, 2, 4 and 8 worker processes with the same work at each
point. A curve *flattens after* ``W`` workers when no larger worker count beats
``W``'s rate by :data:`FLAT_GAIN` (so one noisy dip does not end the curve); the
reason is read from what the drain at the next point measured
(:class:`benchmarks.resources.ResourceUse`), in this order:

- Redis: its CPU reached :data:`REDIS_SATURATED` of a core (its commands run on
  one thread, so a busy Redis caps every worker at once);
- CPU: the machine's cores were :data:`CPU_SATURATED` busy; the sentence says
  who used them (workers, Postgres, Redis, the rest of the machine) and warns
  when processes outside the run took :data:`BUSY_ELSEWHERE` of the cores;
- Postgres: on average :data:`PG_WAITING` backends of the run waited on a lock or
  I/O, or as many backends were active as there are cores;
- none: nothing measured was saturated, so the limit is inside the processes
  (round trips per step, the worker's own consumer loop).
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from benchmarks.resources import ResourceUse
from benchmarks.results import DrainRound, Flattening, ScalePoint, System
from benchmarks.stats import paired_ratio

#: a point that adds less than this (relative) over the previous one is flat
FLAT_GAIN = 0.10
CPU_SATURATED = 0.85
REDIS_SATURATED = 0.85
PG_WAITING = 1.0
#: processes outside the run using this share of the cores make the verdict doubtful
BUSY_ELSEWHERE = 0.25
LABELS = {"workers": "workers", "postgres": "Postgres", "redis": "Redis", "other": "other"}


def scale_points(drains: list[DrainRound]) -> list[ScalePoint]:
    """One point per worker count: median rates, the paired ratio, a representative drain's use."""
    by_workers: dict[int, list[DrainRound]] = defaultdict(list)
    for drain in drains:
        by_workers[drain.workers].append(drain)
    points = []
    for workers, rounds in sorted(by_workers.items()):
        herald = [d for d in rounds if d.system == "herald"]
        celery = [d for d in rounds if d.system == "celery"]
        by_round: dict[int, dict[str, float]] = defaultdict(dict)
        for d in rounds:
            by_round[d.round][d.system] = d.steps_per_second
        pairs = [(r["herald"], r["celery"]) for r in by_round.values() if len(r) == 2]
        points.append(
            ScalePoint(
                workers=workers,
                concurrency=rounds[0].concurrency,
                herald=_median_rate(herald),
                celery=_median_rate(celery),
                ratio=paired_ratio(pairs),
                herald_resources=_typical(herald),
                celery_resources=_typical(celery),
            )
        )
    return points


def flattening(points: list[ScalePoint], system: System) -> Flattening:
    """Where ``system``'s curve stops rising, and the resource saturated there."""
    curve = [(p.workers, rate, _resources(p, system)) for p in points if (rate := _rate(p, system))]
    name = "herald" if system == "herald" else "raw Celery"
    if len(curve) < 2:
        return Flattening(system, None, None, None, "not measured", f"{name}: too few points")
    for i, (before, rate, _) in enumerate(curve[:-1]):
        best = max(later for _, later, _ in curve[i + 1 :])
        gain = best / rate - 1
        if gain < FLAT_GAIN:
            after, next_rate, use = curve[i + 1]
            bottleneck, evidence = saturation(use)
            why = (
                f"{name} flattens after {before} worker process(es): more workers add under "
                f"{FLAT_GAIN:.0%} ({before} -> {after}: {rate:,.0f} -> {next_rate:,.0f} steps/s, "
                f"best beyond {gain:+.0%}); at {after}: {evidence}"
            )
            return Flattening(system, before, after, round(gain, 3), bottleneck, why)
    first, last = curve[0], curve[-1]
    bottleneck, evidence = saturation(last[2])
    why = (
        f"{name} still rises up to {last[0]} worker processes "
        f"({first[1]:,.0f} -> {last[1]:,.0f} steps/s); at {last[0]}: {evidence}"
    )
    return Flattening(system, None, None, None, bottleneck, why)


def saturation(use: ResourceUse | None) -> tuple[str, str]:
    """The saturated resource of a drain, and the measurements that say so."""
    if use is None:
        return "not measured", "resources not measured"
    shares = sorted(use.cpu_cores.items(), key=lambda item: -item[1])
    cores = ", ".join(f"{LABELS.get(group, group)} {used:.2f}" for group, used in shares)
    machine = f"CPU {use.cpu_busy:.0%} busy of {use.cpus} cores ({cores} cores)"
    postgres = (
        f"{use.pg_active_mean:.1f} Postgres backends active on average "
        f"({use.pg_waiting_mean:.1f} waiting on locks or I/O"
        + (f", most on {use.pg_top_wait}" if use.pg_top_wait else "")
        + "), "
        f"{use.pg_commits_per_second:,.0f} commits/s"
    )
    redis = f"Redis {use.redis_cpu:.0%} of a core, {use.redis_commands_per_second:,.0f} commands/s"
    if use.redis_cpu >= REDIS_SATURATED:
        return "Redis", f"Redis-bound: {redis}; {machine}"
    if use.cpu_busy >= CPU_SATURATED:
        elsewhere = use.cpu_cores.get("other", 0.0)
        shared = (
            f"; the machine was not quiet: {elsewhere:.2f} cores went to other processes"
            if elsewhere >= BUSY_ELSEWHERE * use.cpus
            else ""
        )
        return "CPU", f"CPU-bound: {machine}; {postgres}; {redis}{shared}"
    if use.pg_waiting_mean >= PG_WAITING or use.pg_active_mean >= use.cpus:
        return "Postgres", f"Postgres-bound: {postgres}; {machine}"
    return "none", f"no saturated resource: {machine}; {postgres}; {redis}"


def _rate(point: ScalePoint, system: System) -> float | None:
    return point.herald if system == "herald" else point.celery


def _resources(point: ScalePoint, system: System) -> ResourceUse | None:
    return point.herald_resources if system == "herald" else point.celery_resources


def _median_rate(rounds: list[DrainRound]) -> float | None:
    return statistics.median(d.steps_per_second for d in rounds) if rounds else None


def _typical(rounds: list[DrainRound]) -> ResourceUse | None:
    """The resources of the round whose rate is closest to the median of the rounds."""
    measured = [d for d in rounds if d.resources is not None]
    if not measured:
        return None
    middle = statistics.median(d.steps_per_second for d in measured)
    return min(measured, key=lambda d: abs(d.steps_per_second - middle)).resources
