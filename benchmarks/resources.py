"""What the machine, Postgres and Redis were doing while a drain ran.

A drain's rate alone cannot say why adding workers stops helping. While one
runs, :class:`ResourceMonitor` takes a reading at its start and end (CPU
counters of the machine from ``/proc/stat`` and of each process from
``/proc/<pid>/stat``, ``pg_stat_database`` commits of the run's database,
Redis's ``INFO`` commands and CPU) and, in between, samples ``pg_stat_activity``
for the run database's active backends. The differences become a
:class:`ResourceUse`; :mod:`benchmarks.scaleout` reads the saturation from it.
Commits are approximate: Postgres publishes a backend's counters late (see
:meth:`ResourceMonitor.settle`), so the API's last inserts before a drain may show
inside its window.

CPU is counted in cores (1.0 = one core busy for the whole window), split into
the run's workers, Postgres (every ``postgres`` process: the server is shared),
Redis and the rest of the machine.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, text

#: seconds between two ``pg_stat_activity`` samples
SAMPLE_INTERVAL = 0.2
#: how long the commit count must hold still, and may take, after the workers stopped
STATS_STILL = 0.3
STATS_SETTLE = 3.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
GROUPS = ("workers", "postgres", "redis", "other")


@dataclass(frozen=True)
class ResourceUse:
    """What one drain's window cost the machine, Postgres and Redis."""

    seconds: float
    cpus: int
    #: fraction of the machine's cores busy (not idle, not waiting for I/O), 0..1
    cpu_busy: float
    #: cores used per group: workers, postgres, redis, other
    cpu_cores: dict[str, float]
    pg_commits_per_second: float
    #: backends of the run's database running a statement, mean and most of the samples
    pg_active_mean: float
    pg_active_max: int
    #: of those, waiting on a lock, a lightweight lock or I/O (mean)
    pg_waiting_mean: float
    redis_commands_per_second: float
    #: Redis's own CPU (``INFO cpu``), in cores; one core is all its main thread can use
    redis_cpu: float


@dataclass(frozen=True)
class CpuReading:
    """The machine's CPU counters (``/proc/stat``) and each process's CPU time."""

    at: float
    busy_ticks: int
    total_ticks: int
    #: pid -> (command name, start time, utime + stime), times in clock ticks
    processes: dict[int, tuple[str, int, int]] = field(default_factory=dict)


def parse_proc_stat(content: str) -> tuple[int, int]:
    """``(busy, total)`` clock ticks of all CPUs from ``/proc/stat``; idle and iowait are idle."""
    fields = content.splitlines()[0].split()
    if fields[0] != "cpu":
        raise ValueError("/proc/stat does not start with the all-CPU line")
    ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    total = sum(ticks)
    return total - ticks[3] - ticks[4], total


def parse_pid_stat(content: str) -> tuple[str, int, int]:
    """``(command name, start time, utime + stime)`` from ``/proc/<pid>/stat``.

    The name may hold spaces and parentheses, and changes under a kernel worker's
    feet (``kworker/u8:0-writeback``): the start time, not the name, tells a pid
    reused by a new process.
    """
    name = content[content.index("(") + 1 : content.rindex(")")]
    rest = content[content.rindex(")") + 2 :].split()  # rest[0] is field 3 of the line
    return name, int(rest[19]), int(rest[11]) + int(rest[12])  # fields 22, 14 and 15


def read_cpu(proc: Path = Path("/proc")) -> CpuReading:
    """The machine's CPU counters and every process's CPU time, now."""
    busy, total = parse_proc_stat((proc / "stat").read_text())
    processes = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                processes[int(entry.name)] = parse_pid_stat((entry / "stat").read_text())
            except (OSError, ValueError, IndexError):  # gone while we looked
                continue
    return CpuReading(time.monotonic(), busy, total, processes)


def cpu_by_group(
    before: CpuReading,
    after: CpuReading,
    classify: Callable[[int, str], str],
) -> dict[str, float]:
    """Cores each group used between two readings; a process born in between counts from 0."""
    seconds = after.at - before.at
    used = dict.fromkeys(GROUPS, 0.0)
    if seconds <= 0:
        return used
    for pid, (name, start, ticks) in after.processes.items():
        earlier = before.processes.get(pid)
        spent = ticks - (earlier[2] if earlier and earlier[1] == start else 0)
        used[classify(pid, name)] += max(spent, 0) / CLOCK_TICKS / seconds
    return {group: round(cores, 3) for group, cores in used.items()}


def busy_fraction(before: CpuReading, after: CpuReading) -> float:
    """The fraction of the machine's CPU time that was busy between two readings."""
    total = after.total_ticks - before.total_ticks
    return 0.0 if total <= 0 else (after.busy_ticks - before.busy_ticks) / total


def classifier(worker_pids: Iterable[int]) -> Callable[[int, str], str]:
    """Which group a process belongs to: the run's workers (by pid), Postgres, Redis, other."""
    workers = set(worker_pids)

    def classify(pid: int, name: str) -> str:
        if pid in workers:
            return "workers"
        if name.startswith("postgres"):
            return "postgres"
        if name.startswith("redis"):
            return "redis"
        return "other"

    return classify


class ResourceMonitor:
    """Readings at :meth:`start` and :meth:`stop`, ``pg_stat_activity`` samples in between."""

    def __init__(self, engine: Engine, broker_url: str) -> None:
        import redis

        self.engine = engine
        self.redis = redis.Redis.from_url(broker_url)
        self._active: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cpu: CpuReading | None = None
        self._pg = 0
        self._redis: tuple[int, float] = (0, 0.0)

    def start(self) -> None:
        """Take the first readings and start sampling Postgres's backends."""
        self._halt()  # a drain that failed half-way left its sampler running
        self._active = []
        self._stop.clear()
        self._pg = self._commits()
        self._redis = self._redis_counters()
        self._cpu = read_cpu()
        self._thread = threading.Thread(target=self._sample, name="bench-pg-sampler", daemon=True)
        self._thread.start()

    def stop(self, worker_pids: Iterable[int]) -> ResourceUse:
        """The last readings, and what the window between them cost."""
        try:
            after = read_cpu()
            commands, redis_cpu = self._redis_counters()
            commits = self._commits()  # the last second's may not show yet: see settle()
        finally:
            self._halt()
        before = self._cpu
        if before is None:
            raise RuntimeError("ResourceMonitor.stop() before start()")
        seconds = max(after.at - before.at, 1e-9)
        active = [a for a, _ in self._active] or [0]
        waiting = [w for _, w in self._active] or [0]
        return ResourceUse(
            seconds=round(seconds, 3),
            cpus=os.cpu_count() or 1,
            cpu_busy=round(busy_fraction(before, after), 3),
            cpu_cores=cpu_by_group(before, after, classifier(worker_pids)),
            pg_commits_per_second=round((commits - self._pg) / seconds, 1),
            pg_active_mean=round(sum(active) / len(active), 2),
            pg_active_max=max(active),
            pg_waiting_mean=round(sum(waiting) / len(waiting), 2),
            redis_commands_per_second=round((commands - self._redis[0]) / seconds, 1),
            redis_cpu=round((redis_cpu - self._redis[1]) / seconds, 3),
        )

    def settle(self, use: ResourceUse) -> ResourceUse:
        """``use`` with its commits counted again once the stopped workers' backends flushed.

        A backend flushes its counters to ``pg_stat_database`` at most once a second
        while busy, and up to 10 s after going idle, but always when it exits: called
        once the workers have stopped (their connections closed), this polls until the
        count holds still for :data:`STATS_STILL` seconds (at most :data:`STATS_SETTLE`).
        The window's length stays the same.
        """
        deadline = time.monotonic() + STATS_SETTLE
        count, still_since = self._commits(), time.monotonic()
        while time.monotonic() - still_since < STATS_STILL and time.monotonic() < deadline:
            time.sleep(SAMPLE_INTERVAL / 2)
            again = self._commits()
            if again != count:
                count, still_since = again, time.monotonic()
        commits = round((count - self._pg) / use.seconds, 1)
        return dataclasses.replace(use, pg_commits_per_second=commits)

    def close(self) -> None:
        """Stop sampling and let go of the Redis connection."""
        self._halt()
        self.redis.close()

    def _halt(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _commits(self) -> int:
        query = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            return int(conn.execute(text(query)).scalar_one())

    def _redis_counters(self) -> tuple[int, float]:
        stats = self.redis.info("stats")
        cpu = self.redis.info("cpu")
        return int(stats["total_commands_processed"]), float(cpu["used_cpu_sys"]) + float(
            cpu["used_cpu_user"]
        )

    def _sample(self) -> None:
        query = text(
            "SELECT count(*) FILTER (WHERE state = 'active'),"
            " count(*) FILTER (WHERE state = 'active'"
            "  AND wait_event_type IN ('Lock', 'LWLock', 'IO'))"
            " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        with self.engine.connect() as conn:
            while not self._stop.wait(SAMPLE_INTERVAL):
                conn.execute(text("SELECT pg_stat_clear_snapshot()"))
                row = conn.execute(query).one()
                self._active.append((int(row[0]), int(row[1])))
                conn.rollback()
