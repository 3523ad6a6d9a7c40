"""The report's PNGs: latency distributions (``latency.png``) and the scale-out (``scaleout.png``).

matplotlib runs headless (Agg) and is imported only here, when the files are written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.results import BenchReport

LATENCY_SERIES = (
    ("ingestion", "POST /api/v1/events latency"),
    ("end_to_end", "end to end, low load (3 steps)"),
    ("per_step", "time per step, low load"),
)
#: CPU groups of a drain, stacked in this order
CPU_GROUPS = (
    ("workers", "workers"),
    ("postgres", "Postgres"),
    ("redis", "Redis"),
    ("other", "other"),
)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_latency_plot(report: BenchReport, path: Path) -> None:
    """One panel per latency series: CDFs, herald and raw Celery overlaid."""
    plt = _pyplot()
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, axes = plt.subplots(1, len(LATENCY_SERIES), figsize=(5.5 * len(LATENCY_SERIES), 4.5))
    for ax, (prefix, title) in zip(axes, LATENCY_SERIES, strict=True):
        series = {k: v for k, v in report.samples.items() if k.startswith(prefix) and v}
        for name, values in sorted(series.items()):
            ordered = sorted(values)
            fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
            ax.plot(ordered, fractions, label=name.removeprefix(prefix).strip() or name)
        ax.set_title(title)
        ax.set_xlabel("milliseconds (log scale)")
        ax.set_ylabel("fraction at or below")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        _legend_or_empty(ax, bool(series))
    fig.suptitle(f"herald vs raw Celery latency ({report.mode}, {report.started_at})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_scaleout_plot(report: BenchReport, path: Path) -> None:
    """Steps per second by worker count (ratio annotated), and the CPU each drain used."""
    plt = _pyplot()
    fig, (rates, cpu) = plt.subplots(1, 2, figsize=(12, 4.8))
    points = report.scaleout
    workers = [p.workers for p in points]
    for system, label in (("herald", "herald"), ("celery", "raw Celery")):
        xs = [p.workers for p in points if getattr(p, system) is not None]
        ys = [getattr(p, system) for p in points if getattr(p, system) is not None]
        rates.plot(xs, ys, marker="o", label=label)
    for p in points:
        if p.ratio is not None and p.herald is not None:
            rates.annotate(
                f"{p.ratio:.2f}x",
                (p.workers, p.herald),
                textcoords="offset points",
                xytext=(0, -14),
                ha="center",
                fontsize="small",
            )
    rates.set_xscale("log", base=2)
    rates.set_xticks(workers, [str(w) for w in workers])
    rates.set_xlabel("worker processes (log 2 scale)")
    rates.set_ylabel("steps per second (median of rounds)")
    rates.set_title("drain throughput; herald / raw Celery under herald's points")
    rates.set_ylim(bottom=0)
    rates.grid(True, alpha=0.3)
    _legend_or_empty(rates, bool(points))
    _plot_cpu(cpu, report)
    verdicts = "; ".join(
        f"{f.system}: {f.bottleneck}" + (f" after {f.after}" if f.after else "")
        for f in report.flattening
    )
    fig.suptitle(
        f"herald vs raw Celery scale-out ({report.mode}, {report.started_at})"
        + (f" - flattens: {verdicts}" if verdicts else "")
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_cpu(ax: Any, report: BenchReport) -> None:
    """Cores used during each drain, stacked by group: herald (left) and raw Celery (right)."""
    bars = []
    for i, p in enumerate(report.scaleout):
        bars += [(i - 0.2, "H", p.herald_resources), (i + 0.2, "C", p.celery_resources)]
    measured = [(x, tag, use) for x, tag, use in bars if use is not None]
    bottoms = [0.0] * len(measured)
    for group, label in CPU_GROUPS:
        heights = [use.cpu_cores.get(group, 0.0) for _, _, use in measured]
        ax.bar([x for x, _, _ in measured], heights, width=0.36, bottom=bottoms, label=label)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    for (x, tag, _), top in zip(measured, bottoms, strict=True):
        ax.text(x, top, tag, ha="center", va="bottom", fontsize="small")
    if measured:
        cpus = measured[0][2].cpus
        ax.axhline(cpus, color="black", linestyle="--", linewidth=1, label=f"{cpus} cores")
    ax.set_xticks(range(len(report.scaleout)), [str(p.workers) for p in report.scaleout])
    ax.set_xlabel("worker processes (H herald, C raw Celery)")
    ax.set_ylabel("cores used during the drain")
    ax.set_title("where the CPU went")
    _legend_or_empty(ax, bool(measured))


def _legend_or_empty(ax: Any, has_data: bool) -> None:
    if has_data:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
