"""The report of a run: Markdown tables, a JSON file, and the plots of :mod:`benchmarks.plots`."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.plots import write_latency_plot, write_scaleout_plot
from benchmarks.resources import ResourceUse
from benchmarks.results import BenchReport, Comparison, HotPathProfile, ProfileEntry


def write_all(report: BenchReport, out_dir: Path) -> dict[str, Path]:
    """Write ``report.md``, ``report.json``, ``latency.png`` and ``scaleout.png`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "table": out_dir / "report.md",
        "json": out_dir / "report.json",
        "plot": out_dir / "latency.png",
        "scaleout": out_dir / "scaleout.png",
    }
    paths["table"].write_text(render_markdown(report), encoding="utf-8")
    paths["json"].write_text(json.dumps(to_json(report), indent=2) + "\n", encoding="utf-8")
    write_latency_plot(report, paths["plot"])
    write_scaleout_plot(report, paths["scaleout"])
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
        _scaleout(report),
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


def _scaleout(report: BenchReport) -> str:
    """Steps per second by worker count, what each drain cost, where each curve flattens."""
    rows = []
    for point in report.scaleout:
        for system, rate, use in (
            ("herald", point.herald, point.herald_resources),
            ("celery", point.celery, point.celery_resources),
        ):
            ratio = _num(point.ratio, 2) if system == "herald" else ""
            workers = f"{point.workers} x {point.concurrency}"
            rows.append([workers, system, _num(rate, 0), ratio, *_resource_cells(use)])
    header = [
        "workers x concurrency",
        "system",
        "steps/s",
        "herald / celery",
        "CPU busy",
        "cores: workers / Postgres / Redis / other",
        "PG commits/s",
        "PG active (waiting, top wait)",
        "Redis cmds/s",
        "Redis CPU",
    ]
    table = _table("Scale-out: steps per second by worker processes", header, rows)
    if not table:
        return ""
    lines = [f"- {f.why} ({f.bottleneck})" for f in report.flattening]
    return table + ("\n\nWhere it flattens and why:\n\n" + "\n".join(lines) if lines else "")


def _resource_cells(use: ResourceUse | None) -> list[str]:
    if use is None:
        return ["-"] * 6
    cores = use.cpu_cores
    return [
        f"{use.cpu_busy:.0%}",
        " / ".join(f"{cores.get(g, 0.0):.2f}" for g in ("workers", "postgres", "redis", "other")),
        _num(use.pg_commits_per_second, 0),
        f"{use.pg_active_mean:.1f} ({use.pg_waiting_mean:.1f}"
        + (f", {use.pg_top_wait}" if use.pg_top_wait else "")
        + ")",
        _num(use.redis_commands_per_second, 0),
        f"{use.redis_cpu:.0%}",
    ]


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
    rows = [
        [m.role, str(m.processes), _num(m.max_rss_mb), _num(m.main_rss_mb), _num(m.child_rss_mb)]
        for m in report.memory
    ]
    header = ["role", "processes", "max RSS MB", "main process MB", "largest child MB"]
    return _table("Peak memory (VmHWM, read from /proc before each stop)", header, rows)


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
