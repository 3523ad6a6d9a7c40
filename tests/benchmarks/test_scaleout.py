"""The harness's issue-16 parts: resource readings, the scale-out verdict, memory, new targets.

Like test_harness.py, nothing here times anything: fake readings and figures go in,
and the tests check what the harness derives and writes from them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from benchmarks.cluster import RolePeak, fold_peak
from benchmarks.compare import compare, end_to_end, first_step_start, memory_ratio
from benchmarks.report import render_markdown, write_all
from benchmarks.resources import (
    CLOCK_TICKS,
    CpuReading,
    ResourceMonitor,
    ResourceUse,
    Snapshot,
    busy_fraction,
    classifier,
    cpu_by_group,
    parse_pid_stat,
    parse_proc_stat,
    read_cpu,
    top_wait,
    use_between,
)
from benchmarks.results import BenchReport, DrainRound, LatencyRound, PeakMemory
from benchmarks.scaleout import flattening, saturation, scale_points
from benchmarks.services import parse_vmhwm, peak_rss_kb
from benchmarks.stats import Summary, steady_rate, steady_window
from tests.support import wait_for

PROC_STAT = "cpu  100 5 50 800 20 3 2 10 0 0\ncpu0 50 2 25 400 10 1 1 5 0 0\nintr 1\n"


def test_proc_stat_counts_idle_and_iowait_as_idle() -> None:
    busy, total = parse_proc_stat(PROC_STAT)
    assert total == 100 + 5 + 50 + 800 + 20 + 3 + 2 + 10
    assert busy == total - 800 - 20
    with pytest.raises(ValueError):
        parse_proc_stat("cpu0 1 2 3 4 5 6 7 8\n")


def test_pid_stat_reads_a_name_with_spaces_and_parentheses() -> None:
    fields = " ".join(str(n) for n in range(3, 53))  # field 3 (state) onwards
    name, start, ticks = parse_pid_stat(f"42 (celery (x) 1) {fields}")
    assert name == "celery (x) 1"
    assert start == 22
    assert ticks == 14 + 15  # utime and stime are fields 14 and 15


def test_read_cpu_sees_this_process() -> None:
    reading = read_cpu()
    assert os.getpid() in reading.processes
    assert 0 < reading.busy_ticks < reading.total_ticks


def _reading(at: float, busy: int, total: int, processes: dict[int, tuple[str, int]]) -> CpuReading:
    """A reading whose processes all started at tick 1, unless their name says ``new``."""
    started = {pid: (name, 2 if "new" in name else 1, t) for pid, (name, t) in processes.items()}
    return CpuReading(at, busy, total, started)


def test_cpu_by_group_splits_cores_and_counts_a_process_born_in_the_window() -> None:
    tick = CLOCK_TICKS
    before = _reading(0.0, 0, 0, {10: ("celery", 0), 20: ("postgres", 5 * tick), 30: ("x", 0)})
    after = _reading(
        2.0,
        7 * tick,  # 3.5 cores busy for 2 s, 0.5 of them by no process still there
        8 * tick,
        {
            10: ("celery", 2 * tick),  # a worker: 1 core for 2 s
            11: ("celery", tick),  # a pool child started in the window
            20: ("postgres", 6 * tick),
            21: ("postgres: bench", tick),
            40: ("redis-server", tick),
            30: ("x", 0),
        },
    )
    used = cpu_by_group(before, after, classifier([10, 11]))
    assert used == {"workers": 1.5, "postgres": 1.0, "redis": 0.5, "other": 0.5}
    assert busy_fraction(before, after) == pytest.approx(0.875)
    assert busy_fraction(after, after) == 0.0


def test_a_renamed_process_counts_on_and_a_reused_pid_counts_from_zero() -> None:
    tick = CLOCK_TICKS
    before = _reading(0.0, 0, 0, {7: ("postgres", 100 * tick), 8: ("postgres: a", 50)})
    after = _reading(
        1.0, 2 * tick, 2 * tick, {7: ("postgres new", tick), 8: ("postgres: b", 50 + tick // 2)}
    )
    used = cpu_by_group(before, after, classifier([]))
    assert used["postgres"] == pytest.approx(1.5)
    assert used["other"] == pytest.approx(0.5)  # the machine's busy time nobody named took


def test_vmhwm_is_read_from_proc_status() -> None:
    assert parse_vmhwm("Name:\tx\nVmPeak:\t 9000 kB\nVmHWM:\t  1234 kB\nVmRSS:\t 1000 kB\n") == 1234
    assert parse_vmhwm("Name:\tkthreadd\n") is None
    own = peak_rss_kb(os.getpid())
    assert own is not None and own > 1000  # this interpreter holds more than a megabyte
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    assert peak_rss_kb(pid_max + 1) is None


def test_fold_peak_keeps_the_largest_main_process_and_child_of_a_role() -> None:
    first = fold_peak(None, 100, {100: 50_000, 101: 70_000, 102: 60_000})
    assert first == RolePeak(processes=3, main_kb=50_000, child_kb=70_000)
    second = fold_peak(first, 200, {200: 55_000})  # a tree whose children are gone
    assert second == RolePeak(processes=3, main_kb=55_000, child_kb=70_000)


def use(
    busy: float = 0.5,
    workers: float = 0.5,
    postgres: float = 0.3,
    redis_cpu: float = 0.1,
    active: float = 0.5,
    waiting: float = 0.0,
    other: float = 0.1,
) -> ResourceUse:
    cores = {"workers": workers, "postgres": postgres, "redis": redis_cpu, "other": other}
    return ResourceUse(5.0, 2, busy, cores, 900.0, active, 2, waiting, 4000.0, redis_cpu)


def drain(system: str, workers: int, rate: float, res: ResourceUse | None = None) -> DrainRound:
    return DrainRound(system, 1, workers, 2, 100, 10, 1000, 5.0, rate, res)  # type: ignore[arg-type]


def _curve(rates: dict[int, float], at: dict[int, ResourceUse]) -> list[DrainRound]:
    drains = []
    for workers, rate in rates.items():
        drains.append(drain("herald", workers, rate, at.get(workers)))
        drains.append(drain("celery", workers, rate * 2, at.get(workers)))
    return drains


def test_scale_points_pair_rounds_and_keep_the_median_rounds_resources() -> None:
    quiet, busy = use(busy=0.4), use(busy=0.9)
    drains = [
        drain("herald", 1, 100.0, quiet),
        drain("celery", 1, 200.0),
        DrainRound("herald", 2, 1, 2, 100, 10, 1000, 5.0, 120.0, busy),
        DrainRound("celery", 2, 1, 2, 100, 10, 1000, 5.0, 200.0),
        DrainRound("herald", 3, 1, 2, 100, 10, 1000, 5.0, 300.0, use(busy=1.0)),
    ]
    [point] = scale_points(drains)
    assert (point.workers, point.herald, point.celery) == (1, 120.0, 200.0)
    assert point.ratio == pytest.approx(0.55)  # median of 0.5 and 0.6: round 3 has no pair
    assert point.herald_resources == busy
    assert point.celery_resources is None


def test_a_curve_flattens_where_the_next_point_gains_under_10_percent_cpu_bound() -> None:
    cpu = use(busy=0.97, workers=1.2, postgres=0.5)
    points = scale_points(_curve({1: 100.0, 2: 180.0, 4: 190.0, 8: 185.0}, {4: cpu}))
    verdict = flattening(points, "herald")
    assert (verdict.after, verdict.next, verdict.bottleneck) == (2, 4, "CPU")
    assert verdict.gain == pytest.approx(0.056, abs=0.001)
    assert verdict.why.startswith(
        "herald flattens after 2 worker process(es): more workers add under 10% "
        "(2 -> 4: 180 -> 190 steps/s, best beyond +6%)"
    )
    assert "CPU 97% busy of 2 cores (workers 1.20, Postgres 0.50" in verdict.why
    assert "not quiet" not in verdict.why
    bottleneck, evidence = saturation(use(busy=0.99, workers=0.4, other=1.2))
    assert bottleneck == "CPU"
    assert evidence.endswith("the machine was not quiet: 1.20 cores went to other processes")


@pytest.mark.parametrize(
    ("resources", "bottleneck"),
    [
        (use(busy=0.95, redis_cpu=0.9), "Redis"),  # Redis's one thread first, even on a busy box
        (use(busy=0.6, waiting=1.5), "Postgres"),
        (use(busy=0.6, active=2.0), "Postgres"),  # as many running backends as cores
        (use(busy=0.6), "none"),
        (None, "not measured"),
    ],
)
def test_saturation_names_the_resource(resources: ResourceUse | None, bottleneck: str) -> None:
    assert saturation(resources)[0] == bottleneck


def test_a_dip_does_not_end_a_curve_that_rises_after_it() -> None:
    points = scale_points(_curve({1: 53.0, 2: 40.0, 4: 80.0, 8: 84.0}, {8: use(busy=0.99)}))
    verdict = flattening(points, "herald")
    assert (verdict.after, verdict.next, verdict.bottleneck) == (4, 8, "CPU")


def test_a_curve_that_keeps_rising_says_so_with_its_last_points_use() -> None:
    points = scale_points(_curve({1: 100.0, 2: 190.0, 4: 350.0}, {4: use(busy=0.6)}))
    verdict = flattening(points, "celery")
    assert (verdict.after, verdict.bottleneck) == (None, "none")
    assert verdict.why.startswith("raw Celery still rises up to 4 worker processes (200 -> 700")
    assert flattening(points[:1], "herald").bottleneck == "not measured"


def _latency(system: str, round_: int, p50: float, p99: float, first: float) -> LatencyRound:
    e2e = Summary(10, p50, p50, p99, p99, p99)
    breakdown = {"POST to 1st step start": first} if system == "herald" else {}
    return LatencyRound(system, round_, e2e, e2e, breakdown)  # type: ignore[arg-type]


def test_end_to_end_and_first_step_targets() -> None:
    rounds = [_latency("herald", 1, 14.0, 40.0, 4.0), _latency("celery", 1, 6.0, 9.0, 0.0)]
    rounds.append(_latency("herald", 2, 16.0, 60.0, 6.0))
    e2e = end_to_end(rounds)
    assert e2e is not None
    assert (e2e.value, e2e.celery, e2e.met) == (15.0, 6.0, True)  # p50 15, p99 50: both at target
    assert e2e.name == "3-step run, POST to succeeded (p99 50.0 ms)"
    rounds.append(_latency("herald", 3, 16.0, 60.0, 6.0))
    assert end_to_end(rounds).met is False  # type: ignore[union-attr]
    first = first_step_start(rounds)
    assert first is not None and (first.value, first.met) == (6.0, False)
    assert end_to_end([]) is None and first_step_start([]) is None


def test_memory_ratio_of_the_largest_worker_processes() -> None:
    memory = [PeakMemory("api", 3, 90.0), PeakMemory("celery worker", 3, 60.0, 60.0, 58.0)]
    assert memory_ratio(memory) is None  # no herald worker measured
    memory.append(PeakMemory("herald worker", 3, 90.0, 90.0, 85.0))
    ratio = memory_ratio(memory)
    assert ratio is not None and (ratio.value, ratio.met) == (1.5, True)
    memory[-1] = PeakMemory("herald worker", 3, 132.0, 132.0, 120.0)
    assert memory_ratio(memory).met is False  # type: ignore[union-attr]


def _scaleout_report() -> BenchReport:
    report = BenchReport(mode="quick", started_at="2026-01-01 00:00 UTC", machine={"cpus": "2"})
    cpu = use(busy=0.97, workers=1.2, postgres=0.5)
    report.drains = _curve({1: 100.0, 2: 180.0, 4: 190.0, 8: 185.0}, {2: use(), 4: cpu})
    report.memory = [
        PeakMemory("celery worker", 3, 60.0, 60.0, 58.0),
        PeakMemory("herald worker", 3, 120.0, 120.0, 110.0),
    ]
    report.scaleout = scale_points(report.drains)
    report.flattening = [flattening(report.scaleout, s) for s in ("herald", "celery")]
    report.comparisons = compare(report)
    return report


def test_throughput_targets_hold_for_1_2_and_4_workers_only() -> None:
    names = [c.name for c in _scaleout_report().comparisons if c.name.startswith("step")]
    assert names == [f"step throughput, {w} worker process(es)" for w in (1, 2, 4)]


def test_report_has_the_scaleout_table_verdicts_memory_and_both_plots(tmp_path: Path) -> None:
    report = _scaleout_report()
    table = render_markdown(report)
    assert "| 4 x 2 | herald | 190 | 0.50 | 97% | 1.20 / 0.50 / 0.10 / 0.10 | 900 |" in table
    assert "| 8 x 2 | herald | 185 | 0.50 | - |" in table
    assert "- herald flattens after 2 worker process(es)" in table and "(CPU)" in table
    assert "| herald worker | 3 | 120.0 | 120.0 | 110.0 |" in table
    rss = "| worker peak RSS (largest process, VmHWM) | 120.0 | 60.0 | 2.00 herald / celery |"
    assert rss in table
    paths = write_all(report, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["flattening"][0]["bottleneck"] == "CPU"
    assert data["scaleout"][2]["herald_resources"]["cpu_cores"]["workers"] == 1.2
    for plot in ("plot", "scaleout"):
        assert paths[plot].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_report_without_drains_still_writes_an_empty_scaleout_plot(tmp_path: Path) -> None:
    report = BenchReport(mode="quick", started_at="2026-01-01 00:00 UTC", machine={})
    paths = write_all(report, tmp_path)
    assert "Scale-out" not in paths["table"].read_text()
    assert paths["scaleout"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _snapshot(at: float, busy: int, commits: int, active: int, commands: int) -> Snapshot:
    cpu = CpuReading(at, busy, int(at * 200), {1: ("celery", 1, busy)})
    return Snapshot(at, cpu, commits, active, 0, commands, at / 10)


def test_use_between_takes_the_samples_that_enclose_the_window() -> None:
    snapshots = [_snapshot(float(t), t * 150, t * 100, t % 3, t * 1000) for t in range(10)]
    use = use_between(snapshots, 2.5, 6.2, [1])
    assert use is not None
    assert use.seconds == 5.0  # the samples at 2 and 7
    assert use.pg_commits_per_second == 100.0
    assert use.redis_commands_per_second == 1000.0
    assert use.redis_cpu == pytest.approx(0.1)
    assert use.cpu_busy == pytest.approx(0.75)
    assert use.cpu_cores["workers"] == pytest.approx(150 / CLOCK_TICKS)
    assert use.pg_active_max == 2
    assert use.pg_active_mean == pytest.approx(statistics.fmean(t % 3 for t in range(2, 8)))


def test_the_top_wait_event_and_its_share() -> None:
    assert top_wait([]) == ""
    assert top_wait(["IO:WALSync", "LWLock:WALWrite", "IO:WALSync", "IO:WALSync"]) == (
        "IO:WALSync 75%"
    )
    snapshots = [_snapshot(float(t), t, t, 1, t) for t in range(3)]
    snapshots[1] = dataclasses.replace(snapshots[1], pg_waits=("Lock:tuple", "Lock:tuple"))
    use = use_between(snapshots, 0.0, 2.0, [])
    assert use is not None and use.pg_top_wait == "Lock:tuple 100%"
    assert "most on Lock:tuple 100%" in saturation(use)[1]


def test_use_between_spans_two_samples_however_short_or_outside_the_window() -> None:
    snapshots = [_snapshot(float(t), t, t, 0, t) for t in range(4)]
    assert use_between(snapshots, 1.4, 1.6, []).seconds == 1.0  # type: ignore[union-attr]
    assert use_between(snapshots, -5.0, -4.0, []).seconds == 1.0  # type: ignore[union-attr]
    assert use_between(snapshots, 8.0, 9.0, []).seconds == 1.0  # type: ignore[union-attr]
    assert use_between(snapshots[:1], 0.0, 1.0, []) is None


def test_steady_window_is_where_the_steady_rate_is_taken() -> None:
    finishes = [0.0, 1.0, 2.0] + [10.0 + i * 0.01 for i in range(1000)] + [60.0]
    start, end = steady_window(finishes)
    assert 10.0 < start < end < 20.0
    assert steady_rate(finishes) == pytest.approx(100.0, rel=0.01)


def test_monitor_samples_commits_backends_redis_commands_and_cpu(
    pg_engine: Engine, redis_url: str
) -> None:
    import redis

    monitor = ResourceMonitor(pg_engine, redis_url)
    client = redis.Redis.from_url(redis_url)
    try:
        monitor.start()
        wait_for("the monitor's first sample", lambda: monitor.snapshots, timeout=10)
        # a connection of its own, closed at the end as a stopped worker's is: its
        # backend's counters reach pg_stat_database when it exits, if not before
        own = create_engine(pg_engine.url, poolclass=NullPool)
        with own.connect() as conn:
            for _ in range(25):
                conn.execute(text("SELECT 1"))
                conn.commit()
        own.dispose()
        for _ in range(50):
            client.ping()

        def counted() -> bool:
            seen = list(monitor.snapshots)
            return len(seen) > 1 and seen[-1].pg_commits - seen[0].pg_commits >= 25

        wait_for("the monitor to see 25 commits", counted, timeout=10)
        snapshots = monitor.stop()
    finally:
        monitor.close()
        client.close()
    use = use_between(snapshots, snapshots[0].at, snapshots[-1].at, [os.getpid()])
    assert use is not None
    assert use.pg_commits_per_second * use.seconds >= 25  # other tests may commit more
    assert use.redis_commands_per_second * use.seconds >= 50
    assert 0.0 <= use.cpu_busy <= 1.0
    assert use.cpu_cores["workers"] > 0  # this process, named as the workers
    assert use.pg_active_max >= 0 and use.pg_waiting_mean >= 0
