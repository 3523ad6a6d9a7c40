"""Summaries of samples: percentiles, steady-state rates and herald / raw Celery ratios."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolating between closest ranks like numpy's default."""
    if not samples:
        raise ValueError("no samples to take a percentile of")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Summary:
    """The distribution of a set of samples (latencies in milliseconds, usually)."""

    count: int
    mean: float
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        """Summarise ``samples``; an empty sequence gives a summary of zeros with ``count=0``."""
        if not samples:
            return cls(0, 0.0, 0.0, 0.0, 0.0, 0.0)
        return cls(
            count=len(samples),
            mean=statistics.fmean(samples),
            p50=percentile(samples, 50),
            p95=percentile(samples, 95),
            p99=percentile(samples, 99),
            max=max(samples),
        )


def steady_rate(finish_times: Sequence[float], trim: float = 0.1) -> float:
    """Completions per second between the ``trim`` and ``1 - trim`` quantiles of finish times.

    Trimming both ends leaves out worker start-up (processes that start at slightly
    different times) and the tail, so the figure is the rate the workers sustain.
    """
    first, last, count = _steady(finish_times, trim)
    span = last - first
    if span <= 0:
        return math.inf
    return count / span


def steady_window(finish_times: Sequence[float], trim: float = 0.1) -> tuple[float, float]:
    """The times the :func:`steady_rate` is taken between (what the resources are read over)."""
    first, last, _ = _steady(finish_times, trim)
    return first, last


def _steady(finish_times: Sequence[float], trim: float) -> tuple[float, float, int]:
    if len(finish_times) < 2:
        raise ValueError("a rate needs at least two completions")
    if not 0 <= trim < 0.5:
        raise ValueError(f"trim must be within [0, 0.5), got {trim}")
    ordered = sorted(finish_times)
    first = round((len(ordered) - 1) * trim)
    last = round((len(ordered) - 1) * (1 - trim))
    return ordered[first], ordered[last], last - first


def ratio(herald: float, raw: float) -> float | None:
    """``herald / raw``, or ``None`` when there is nothing to compare against."""
    if raw == 0 or math.isinf(raw) or math.isnan(raw):
        return None
    return herald / raw


def paired_ratio(pairs: Sequence[tuple[float, float]]) -> float | None:
    """The median of per-round ``herald / raw`` ratios (rounds run A/B, A/B, ...).

    Comparing each herald round with the raw round run right next to it, and then
    taking the median, keeps a burst of noise on a shared machine from deciding
    the figure.
    """
    ratios = [r for h, c in pairs if (r := ratio(h, c)) is not None]
    return statistics.median(ratios) if ratios else None
