"""What the machine, Postgres and Redis were doing while a drain ran.

A drain's rate alone cannot say why adding workers stops helping. While one
runs, :class:`ResourceMonitor` samples, every :data:`SAMPLE_INTERVAL`, the CPU
counters of the machine (``/proc/stat``) and of each process (``/proc/<pid>/stat``),
the run database's commits (``pg_stat_database``) and active backends
(``pg_stat_activity``), and Redis's commands and CPU (``INFO``).
:func:`use_between` turns the samples around the window a drain's rate was
taken over into a :class:`ResourceUse`; :mod:`benchmarks.scaleout` reads the
saturation from it. Commits are approximate: Postgres publishes a busy
backend's counters up to a second late (alike at both ends of a window) and an
idle one's up to 10 s late, so the API's last inserts before a drain may show
inside its window.

CPU is counted in cores (1.0 = one core busy for the whole window), split into
the run's workers, Postgres (every ``postgres`` process: the server is shared),
Redis and the rest of the machine's busy time.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, text

#: seconds between two samples
SAMPLE_INTERVAL = 0.25
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
    #: the wait event most often seen among waiting backends (``IO:WALSync``), or ""
    pg_top_wait: str = ""


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
    return CpuReading(time.time(), busy, total, processes)


def cpu_by_group(
    before: CpuReading,
    after: CpuReading,
    classify: Callable[[int, str], str],
) -> dict[str, float]:
    """Cores each group used between two readings; a process born in between counts from 0.

    "other" is what the machine was busy with (``/proc/stat``) beyond the named
    groups, so that processes that came and went between the readings count too.
    """
    seconds = after.at - before.at
    used = dict.fromkeys(GROUPS, 0.0)
    if seconds <= 0:
        return used
    for pid, (name, start, ticks) in after.processes.items():
        group = classify(pid, name)
        if group != "other":
            earlier = before.processes.get(pid)
            spent = ticks - (earlier[2] if earlier and earlier[1] == start else 0)
            used[group] += max(spent, 0) / CLOCK_TICKS / seconds
    busy = (after.busy_ticks - before.busy_ticks) / CLOCK_TICKS / seconds
    used["other"] = max(0.0, busy - sum(used.values()))
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


@dataclass(frozen=True)
class Snapshot:
    """One sample of every counter the monitor follows."""

    #: wall-clock seconds, like the step finish times the window is chosen by
    at: float
    cpu: CpuReading
    pg_commits: int
    #: the run database's backends running a statement, and of those waiting on a lock or I/O
    pg_active: int
    pg_waiting: int
    redis_commands: int
    #: Redis's CPU seconds so far (``used_cpu_sys + used_cpu_user``)
    redis_cpu: float
    #: ``type:event`` of each waiting backend
    pg_waits: tuple[str, ...] = ()


def use_between(
    snapshots: Sequence[Snapshot], start: float, end: float, worker_pids: Iterable[int]
) -> ResourceUse | None:
    """What the window from ``start`` to ``end`` cost, from the samples that enclose it.

    The first sample is the last one taken at or before ``start``, the last the first
    one at or after ``end`` (or the nearest there is), so a window shorter than the
    sampling interval still spans two samples.
    """
    if len(snapshots) < 2:
        return None
    first = max([i for i, s in enumerate(snapshots) if s.at <= start] or [0])
    last = min([i for i, s in enumerate(snapshots) if s.at >= end] or [len(snapshots) - 1])
    last = max(last, first + 1) if first + 1 < len(snapshots) else last
    first = min(first, last - 1)
    before, after = snapshots[first], snapshots[last]
    inside = snapshots[first : last + 1]
    seconds = max(after.at - before.at, 1e-6)
    return ResourceUse(
        seconds=round(seconds, 3),
        cpus=os.cpu_count() or 1,
        cpu_busy=round(busy_fraction(before.cpu, after.cpu), 3),
        cpu_cores=cpu_by_group(before.cpu, after.cpu, classifier(worker_pids)),
        pg_commits_per_second=round((after.pg_commits - before.pg_commits) / seconds, 1),
        pg_active_mean=round(statistics.fmean(s.pg_active for s in inside), 2),
        pg_active_max=max(s.pg_active for s in inside),
        pg_waiting_mean=round(statistics.fmean(s.pg_waiting for s in inside), 2),
        redis_commands_per_second=round(
            (after.redis_commands - before.redis_commands) / seconds, 1
        ),
        redis_cpu=round((after.redis_cpu - before.redis_cpu) / seconds, 3),
        pg_top_wait=top_wait([w for s in inside for w in s.pg_waits]),
    )


def top_wait(waits: Sequence[str]) -> str:
    """The most frequent wait event and its share of the waits seen: ``IO:WALSync 80%``."""
    if not waits:
        return ""
    event, count = Counter(waits).most_common(1)[0]
    return f"{event} {count / len(waits):.0%}"


class ResourceMonitor:
    """Samples every counter each :data:`SAMPLE_INTERVAL` from :meth:`start` to :meth:`stop`.

    A drain starts the monitor before its workers, so that whatever window its rate
    is taken over (between the 10th and 90th percentile of finishes) is covered, and
    picks that window afterwards with :func:`use_between`. A sample costs about 3 ms
    of CPU (every ``/proc/<pid>/stat``): about 1% of a core.
    """

    def __init__(self, engine: Engine, broker_url: str) -> None:
        import redis

        self.engine = engine
        self.redis = redis.Redis.from_url(broker_url)
        self.snapshots: list[Snapshot] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Forget earlier samples and start sampling."""
        self._halt()  # a drain that failed half-way left its sampler running
        self.snapshots = []
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="bench-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> list[Snapshot]:
        """Stop sampling (a last sample is taken); every sample since :meth:`start`."""
        self._halt()
        return self.snapshots

    def close(self) -> None:
        """Stop sampling and let go of the Redis connection."""
        self._halt()
        self.redis.close()

    def _halt(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _sample(self) -> None:
        try:
            self._sample_until_stopped()
        except Exception:  # the drain's rate does not depend on its monitor: say so, go on
            print(
                "resource monitor failed; this drain's resources are not measured:", file=sys.stderr
            )
            traceback.print_exc(file=sys.stderr)

    def _sample_until_stopped(self) -> None:
        # pg_stat_database shows a busy backend's commits up to a second late, at both
        # ends of a window alike; a transaction per sample gives fresh statistics
        waiting = "state = 'active' AND wait_event_type IN ('Lock', 'LWLock', 'IO')"
        query = text(
            "SELECT (SELECT xact_commit FROM pg_stat_database"
            "        WHERE datname = current_database()),"
            " count(*) FILTER (WHERE state = 'active'),"
            f" count(*) FILTER (WHERE {waiting}),"
            f" array_remove(array_agg(CASE WHEN {waiting}"
            "  THEN wait_event_type || ':' || wait_event END), NULL)"
            " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        with self.engine.connect() as conn:
            while True:
                stopping = self._stop.is_set()  # once set: one last sample, then stop
                cpu = read_cpu()
                commits, active, waiting, waits = conn.execute(query).one()
                conn.rollback()
                stats, used = self.redis.info("stats"), self.redis.info("cpu")
                self.snapshots.append(
                    Snapshot(
                        at=cpu.at,
                        cpu=cpu,
                        pg_commits=int(commits),
                        pg_active=int(active),
                        pg_waiting=int(waiting),
                        redis_commands=int(stats["total_commands_processed"]),
                        redis_cpu=float(used["used_cpu_sys"]) + float(used["used_cpu_user"]),
                        pg_waits=tuple(waits or ()),
                    )
                )
                if stopping:
                    return
                self._stop.wait(SAMPLE_INTERVAL)
