"""One benchmark run, phase by phase, on its own database, queues and processes.

Order: the in-process measurements first (definitions, profiles), then the API
alone (ingestion), then herald and raw Celery rounds interleaved (A/B, A/B) at
low load and in drains (the scale-out: 1, 2, 4 and 8 worker processes, each drain
watched by a :class:`~benchmarks.resources.ResourceMonitor`). Between phases the
tables and queues are emptied. A phase that fails is reported as not measured;
the others still run.
"""

from __future__ import annotations

import os
import platform
import secrets
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import celery

from benchmarks import drain, latency, scaleout
from benchmarks.cluster import Cluster, RunEnv
from benchmarks.compare import compare
from benchmarks.definitions import measure_definitions
from benchmarks.ingestion import measure_batch_ingestion, measure_ingestion
from benchmarks.profiles import profile_post, profile_steps
from benchmarks.project import write_run_project
from benchmarks.resources import ResourceMonitor
from benchmarks.results import BenchReport
from benchmarks.services import Endpoints, bench_database, check_redis
from benchmarks.store import truncate
from workflows.settings import ApiToken, Settings
from workflows.store import db

PHASES = ("definitions", "profiles", "ingestion", "batch", "latency", "drains")
#: pieces of work each system runs before the low-load rounds, unreported
LATENCY_WARMUP = 4
#: the phases that talk to herald through its HTTP API
NEED_API = frozenset({"ingestion", "batch", "latency", "drains"})


@dataclass(frozen=True)
class BenchConfig:
    """How much of everything a run does."""

    mode: str
    ingest_concurrencies: tuple[int, ...]
    ingest_seconds: float
    ingest_warmup: float
    #: batch ingestion: clients, events per batch, seconds measured
    batch_clients: int
    batch_size: int
    batch_seconds: float
    latency_rounds: int
    latency_count: int
    worker_counts: tuple[int, ...]
    worker_concurrency: int
    drain_rounds: int
    drain_executions: int
    drain_steps: int
    #: seconds after which a drain is stopped and measured on what it finished
    drain_limit: float
    large_workflows: int
    large_tasks: int
    subscribers: int
    loads: int
    validations: int
    profile_calls: int
    phases: tuple[str, ...] = PHASES
    #: herald's log level in the API and workers
    log_level: str = "WARNING"

    @classmethod
    def full(cls) -> BenchConfig:
        """The full run (about five minutes)."""
        return cls(
            mode="full",
            ingest_concurrencies=(1, 4, 16, 64),
            ingest_seconds=6.0,
            ingest_warmup=1.0,
            batch_clients=4,
            batch_size=500,
            batch_seconds=6.0,
            latency_rounds=2,
            latency_count=50,
            worker_counts=(1, 2, 4, 8),
            worker_concurrency=2,
            drain_rounds=2,
            drain_executions=150,
            drain_steps=10,
            drain_limit=12.0,
            large_workflows=200,
            large_tasks=20,
            subscribers=10,
            loads=3,
            validations=5000,
            profile_calls=100,
        )

    @classmethod
    def quick(cls) -> BenchConfig:
        """The same measurements, shortened (about a minute)."""
        return cls(
            mode="quick",
            ingest_concurrencies=(1, 16),
            ingest_seconds=1.5,
            ingest_warmup=0.5,
            batch_clients=4,
            batch_size=500,
            batch_seconds=2.0,
            latency_rounds=1,
            latency_count=12,
            worker_counts=(1, 2, 4, 8),
            worker_concurrency=2,
            drain_rounds=1,
            drain_executions=40,
            drain_steps=10,
            drain_limit=4.0,
            large_workflows=200,
            large_tasks=20,
            subscribers=10,
            loads=1,
            validations=500,
            profile_calls=30,
        )


def log(message: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(config: BenchConfig, keep: bool = False) -> BenchReport:
    """Run every phase of ``config``; the report, comparisons included.

    ``keep`` leaves the work directory (process logs, generated projects) in place.
    """
    started = time.perf_counter()
    endpoints = Endpoints.from_env()
    check_redis(endpoints.broker_url)
    report = BenchReport(
        mode=config.mode,
        started_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine={
            "cpus": str(os.cpu_count()),
            "python": platform.python_version(),
            "celery": celery.__version__,
            "os": f"{platform.system()} {platform.release()}",
            "load average before the run": _load_average(),
        },
        settings={k: v for k, v in vars(config).items() if k != "phases"},
    )
    work = Path(tempfile.mkdtemp(prefix="herald-bench-"))
    pid = os.getpid()
    try:
        with bench_database(endpoints.server_url, f"herald_bench_{pid}") as database_url:
            env = RunEnv(
                database_url=database_url,
                broker_url=endpoints.broker_url,
                queue_prefix=f"bench{pid}x{secrets.token_hex(3)}",
                project_dir=write_run_project(work / "project", config.drain_steps),
                token=secrets.token_urlsafe(16),
                work_dir=work,
                log_level=config.log_level,
            )
            _run_phases(config, env, report)
    finally:
        if keep:
            log(f"process logs and projects kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report.comparisons = compare(report)
    report.scaleout = scaleout.scale_points(report.drains)
    report.flattening = [scaleout.flattening(report.scaleout, s) for s in ("herald", "celery")]
    report.machine["load average after the run"] = _load_average()
    report.seconds = time.perf_counter() - started
    return report


def _load_average() -> str:
    """The 1-, 5- and 15-minute load averages: how busy the machine was besides this run."""
    return " / ".join(f"{load:.2f}" for load in os.getloadavg())


def _run_phases(config: BenchConfig, env: RunEnv, report: BenchReport) -> None:
    cluster = Cluster(env)
    engine = db.make_engine(env.database_url)
    sessions = db.make_sessionmaker(engine)
    monitor = ResourceMonitor(engine, env.broker_url)
    settings = Settings(
        project_dir=env.project_dir,
        database_url=env.database_url,
        broker_url=env.broker_url,
        queue_prefix=env.queue_prefix,
        api_tokens=(ApiToken("bench", env.token),),
        log_level="WARNING",
    )

    def reset() -> None:
        cluster.stop_workers()
        cluster.purge()
        truncate(engine)
        for marks in env.marks_dir.glob("*.marks"):
            marks.unlink()

    def definitions() -> None:
        report.definitions = measure_definitions(
            env.work_dir / "large",
            config.large_workflows,
            config.large_tasks,
            config.subscribers,
            config.loads,
            config.validations,
        )

    def profiles() -> None:
        report.profiles.append(profile_post(settings, env.token, config.profile_calls))
        report.profiles.append(profile_steps(settings, config.profile_calls))

    def ingestion() -> None:
        runs, samples = measure_ingestion(
            cluster,
            sessions,
            config.ingest_concurrencies,
            config.ingest_seconds,
            config.ingest_warmup,
        )
        report.ingestion = runs
        report.samples.update(samples)

    def batch() -> None:
        run, samples = measure_batch_ingestion(
            cluster,
            sessions,
            config.batch_clients,
            config.batch_size,
            config.batch_seconds,
            config.ingest_warmup,
        )
        report.batch_ingestion = [run]
        report.samples.update(samples)

    def low_load() -> None:
        cluster.start_herald_workers(1, config.worker_concurrency)
        cluster.start_celery_workers(1, config.worker_concurrency)
        cluster.wait_workers_ready()
        # round 0 warms both up (imports, template and statement caches) and is not reported
        latency.herald_round(cluster, sessions, 0, LATENCY_WARMUP)
        latency.celery_round(cluster, 0, LATENCY_WARMUP)
        count = config.latency_count
        for round_ in range(1, config.latency_rounds + 1):
            for result, samples in (
                latency.herald_round(cluster, sessions, round_, count),
                latency.celery_round(cluster, round_, count),
            ):
                report.latency.append(result)
                for name, values in samples.items():
                    report.samples.setdefault(name, []).extend(values)

    def drains() -> None:
        for workers in config.worker_counts:
            for round_ in range(1, config.drain_rounds + 1):
                log(f"drain: {workers} worker(s), round {round_}")
                plan = drain.DrainPlan(
                    round=round_,
                    workers=workers,
                    concurrency=config.worker_concurrency,
                    executions=config.drain_executions,
                    steps=config.drain_steps,
                    limit=config.drain_limit,
                )
                report.drains.append(drain.herald_drain(cluster, sessions, plan, monitor))
                reset()
                report.drains.append(drain.celery_drain(cluster, plan, monitor))
                reset()

    steps: dict[str, Callable[[], None]] = {
        "definitions": definitions,
        "profiles": profiles,
        "ingestion": ingestion,
        "batch": batch,
        "latency": low_load,
        "drains": drains,
    }
    try:
        for name in config.phases:
            if name in NEED_API and cluster.api is None and "api" not in report.skipped:
                _phase(report, "api", cluster.start_api)
            if name in NEED_API and cluster.api is None:
                report.skipped[name] = "the API did not start"
                continue
            _phase(report, name, steps[name])
            reset()
    finally:
        cluster.close()
        monitor.close()
        engine.dispose()
        cluster.purge()
    report.memory = cluster.peak_memory()


def _phase(report: BenchReport, name: str, step: Callable[[], None]) -> None:
    """Run one phase; a failure is recorded in the report instead of ending the run."""
    log(f"{name}...")
    start = time.perf_counter()
    try:
        step()
    except Exception as exc:  # a broken phase must not hide what the others measured
        traceback.print_exc(file=sys.stderr)
        report.skipped[name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        log(f"{name} failed: {report.skipped[name]}")
    else:
        log(f"{name} done in {time.perf_counter() - start:.1f} s")
