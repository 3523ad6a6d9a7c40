"""The report of a run: a Markdown table, a JSON file and a PNG of latency distributions."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.results import BenchReport, Comparison, HotPathProfile, ProfileEntry

PLOT_SERIES = (
    ("ingestion", "POST /api/v1/events latency"),
    ("end_to_end", "end to end, low load (3 steps)"),
    ("per_step", "time per step, low load"),
)


def write_all(report: BenchReport, out_dir: Path) -> dict[str, Path]:
    """Write ``report.md``, ``report.json`` and ``latency.png`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "table": out_dir / "report.md",
        "json": out_dir / "report.json",
        "plot": out_dir / "latency.png",
    }
    paths["table"].write_text(render_markdown(report), encoding="utf-8")
    paths["json"].write_text(json.dumps(to_json(report), indent=2) + "\n", encoding="utf-8")
    write_plot(report, paths["plot"])
    return paths


def to_json(report: BenchReport) -> dict[str, Any]:
    """The report as JSON-ready data, without the raw samples."""
    data = asdict(report)
    del data["samples"]
    for run, entry in zip(report.ingestion, data["ingestion"], strict=True):
        entry["durable"] = run.durable
    for batch, entry in zip(report.batch_ingestion, data["batch_ingestion"], strict=True):
        entry["durable"] = batch.durable
    return data


def render_markdown(report: BenchReport) -> str:
    """Every table of the report, as Markdown."""
    machine = ", ".join(f"{k} {v}" for k, v in report.machine.items())
    parts = [
        f"herald vs raw Celery, {report.mode} run at {report.started_at} "
        f"({report.seconds:.0f} s; {machine})",
        _comparisons(report.comparisons),
        _ingestion(report),
        _batch_ingestion(report),
        _latency(report),
        _drains(report),
        _definitions(report),
        _memory(report),
        *(_profile(p) for p in report.profiles),
    ]
    if report.skipped:
        parts.append("Not measured: " + "; ".join(f"{k}: {v}" for k, v in report.skipped.items()))
    return "\n\n".join(p for p in parts if p) + "\n"


def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return ""
    lines = [
        f"**{title}**",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _met(comparison: Comparison) -> str:
    return {True: "yes", False: "**no**", None: "-"}[comparison.met]


def _comparisons(comparisons: list[Comparison]) -> str:
    rows = [
        [
            c.name,
            _num(c.herald),
            _num(c.celery),
            f"{_num(c.value, 2)} {c.unit}",
            c.target,
            _met(c),
        ]
        for c in comparisons
    ]
    header = ["measure", "herald", "raw Celery", "result", "target", "met"]
    return _table("Targets (reported, not asserted)", header, rows)


def _ingestion(report: BenchReport) -> str:
    rows = [
        [
            str(r.concurrency),
            _num(r.per_second, 0),
            _num(r.latency_ms.p50, 2),
            _num(r.latency_ms.p95, 2),
            _num(r.latency_ms.p99, 2),
            str(r.failed),
            f"{r.rows}/{r.accepted}" + ("" if r.durable else " **lost**"),
        ]
        for r in report.ingestion
    ]
    header = ["clients", "events/s", "p50 ms", "p95 ms", "p99 ms", "errors", "rows/202s"]
    return _table("Ingestion: POST /api/v1/events", header, rows)


def _batch_ingestion(report: BenchReport) -> str:
    rows = [
        [
            f"{r.clients} x {r.batch}",
            _num(r.per_second, 0),
            _num(r.latency_ms.p50, 1),
            _num(r.latency_ms.p99, 1),
            str(r.failed),
            f"{r.rows}/{r.requests * r.batch}" + ("" if r.durable else " **lost**"),
        ]
        for r in report.batch_ingestion
    ]
    header = ["clients x events", "events/s", "p50 ms a batch", "p99 ms", "errors", "rows/entries"]
    return _table("Batch ingestion: POST /api/v1/events/batch", header, rows)


def _latency(report: BenchReport) -> str:
    rows = [
        [
            r.system,
            str(r.round),
            str(r.end_to_end_ms.count),
            _num(r.end_to_end_ms.p50, 2),
            _num(r.end_to_end_ms.p99, 2),
            _num(r.per_step_ms.p50, 2),
            _num(r.per_step_ms.p99, 2),
            ", ".join(f"{k} {v:.2f}" for k, v in r.breakdown_ms.items()) or "-",
        ]
        for r in report.latency
    ]
    header = [
        "system",
        "round",
        "runs",
        "end-to-end p50 ms",
        "p99 ms",
        "per step p50 ms",
        "p99 ms",
        "herald step breakdown, p50 ms",
    ]
    return _table("Low load: end to end and per step (A/B rounds)", header, rows)


def _drains(report: BenchReport) -> str:
    rows = [
        [
            f"{d.workers} x {d.concurrency}",
            d.system,
            str(d.round),
            f"{d.executions} x {d.steps_per_execution}"
            + (f" ({d.steps_done} done at the time limit)" if d.partial else ""),
            _num(d.seconds, 2),
            _num(d.steps_per_second, 0),
        ]
        for d in report.drains
    ]
    header = ["workers x concurrency", "system", "round", "runs x steps", "drain s", "steps/s"]
    return _table("Step throughput: drain a queue filled with workers stopped", header, rows)


def _definitions(report: BenchReport) -> str:
    d = report.definitions
    if d is None:
        return ""
    rows = [
        [
            f"{d.workflows} workflows x {d.tasks_per_workflow} tasks",
            _num(d.load_ms.p50),
            _num(d.registry_build_ms.p50),
            f"{d.subscribers}",
            _num(d.validate_us.p50),
            _num(d.validate_us.p99),
        ]
    ]
    header = ["project", "load ms", "registry build ms", "schemas", "validate us p50", "p99"]
    return _table("Definitions", header, rows)


def _memory(report: BenchReport) -> str:
    rows = [[m.role, str(m.processes), _num(m.max_rss_mb)] for m in report.memory]
    return _table("Peak memory (VmHWM)", ["role", "processes", "max RSS MB"], rows)


def _profile(profile: HotPathProfile) -> str:
    header = ["function", "calls", "own ms", "cumulative ms", "ms per profiled call"]
    title = (
        f"Where the time goes: {profile.target}, {profile.calls} calls, "
        f"{profile.per_call_us:,.0f} us per call without the profiler"
    )
    by_part = _table(f"{title}: herald's own functions", header, _rows(profile, profile.herald))
    hottest = _table(
        "... and the hottest functions by own time", header, _rows(profile, profile.hottest)
    )
    return f"{by_part}\n\n{hottest}"


def _rows(profile: HotPathProfile, entries: list[ProfileEntry]) -> list[list[str]]:
    return [
        [
            f"`{e.function}`",
            str(e.calls),
            _num(e.own_ms),
            _num(e.cumulative_ms),
            _num(e.cumulative_ms / profile.calls, 2),
        ]
        for e in entries
    ]


def write_plot(report: BenchReport, path: Path) -> None:
    """A PNG: one panel per latency series (herald and raw Celery overlaid), then drain rates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    panels = len(PLOT_SERIES) + 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.5))
    for ax, (prefix, title) in zip(axes, PLOT_SERIES, strict=False):
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
    _plot_drains(axes[-1], report)
    fig.suptitle(f"herald vs raw Celery ({report.mode}, {report.started_at})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_drains(ax: Any, report: BenchReport) -> None:
    """Median steps per second by worker count, herald beside raw Celery."""
    workers = sorted({d.workers for d in report.drains})
    for offset, system in ((-0.2, "herald"), (0.2, "celery")):
        rates = [
            statistics.median(
                [d.steps_per_second for d in report.drains if d.system == system and d.workers == w]
                or [0.0]
            )
            for w in workers
        ]
        ax.bar([i + offset for i in range(len(workers))], rates, width=0.4, label=system)
    ax.set_xticks(range(len(workers)), [f"{w} worker(s)" for w in workers])
    ax.set_title("drain throughput (median of rounds)")
    ax.set_ylabel("steps per second")
    _legend_or_empty(ax, bool(workers))


def _legend_or_empty(ax: Any, has_data: bool) -> None:
    if has_data:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
