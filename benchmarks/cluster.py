"""The processes a run starts: herald's API, herald workers and raw Celery workers.

Every process gets the run's database, broker and queue prefix through ``HERALD_*``
variables, logs to a file of its own, and has its peak memory read just before
it is stopped.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from celery import Celery

from benchmarks.errors import BenchmarkError
from benchmarks.results import PeakMemory
from benchmarks.services import Process, process_tree, purge_queues, wait_for

START_TIMEOUT = 60.0


@dataclass(frozen=True)
class RunEnv:
    """What every process of the run shares."""

    database_url: str
    broker_url: str
    queue_prefix: str
    project_dir: Path
    token: str
    work_dir: Path
    #: herald's log level in the API and workers (each process logs to its own file)
    log_level: str = "WARNING"

    @property
    def raw_queue(self) -> str:
        """The queue raw Celery's chains go through."""
        return f"{self.queue_prefix}.raw"

    @property
    def marks_dir(self) -> Path:
        """Where raw Celery tasks write the time they ran."""
        return self.work_dir / "marks"

    def environ(self) -> dict[str, str]:
        """The environment herald's processes run with."""
        return {
            **os.environ,
            "HERALD_DATABASE_URL": self.database_url,
            "HERALD_BROKER_URL": self.broker_url,
            "HERALD_QUEUE_PREFIX": self.queue_prefix,
            "HERALD_PROJECT_DIR": str(self.project_dir),
            "HERALD_API_TOKENS": f"bench:{self.token}",
            "HERALD_LOG_LEVEL": self.log_level,
            # The run empties queues between phases on purpose: no sweep may re-publish.
            "HERALD_SWEEP_INTERVAL": "3600",
            "HERALD_DISPATCH_DEADLINE": "3600",
            "HERALD_STEP_DEADLINE": "3600",
        }


class Cluster:
    """Starts and stops the run's processes and keeps the peak memory of each role."""

    def __init__(self, env: RunEnv, api_workers: int = 2, api_threads: int = 16) -> None:
        self.env = env
        self.api_workers = api_workers
        self.api_threads = api_threads
        self.api: Process | None = None
        self.workers: list[Process] = []
        #: the Celery node names of the running workers
        self.nodes: list[str] = []
        self.port = 0
        self._started = 0
        self._peaks: dict[str, RolePeak] = {}
        (env.work_dir / "logs").mkdir(parents=True, exist_ok=True)
        env.marks_dir.mkdir(parents=True, exist_ok=True)

    @property
    def events_url(self) -> str:
        """``POST`` events here."""
        return f"http://127.0.0.1:{self.port}/api/v1/events"

    def start_api(self) -> None:
        """``herald serve`` on a free port; returns once ``/health`` answers 200."""
        self.port = _free_port()
        argv = [
            _herald(),
            "serve",
            f"--bind=127.0.0.1:{self.port}",
            f"--workers={self.api_workers}",
            f"--threads={self.api_threads}",
        ]
        api = self._start("api", argv)
        health = f"http://127.0.0.1:{self.port}/health"
        try:
            wait_for(lambda: _answers(health, api), START_TIMEOUT, "the API to answer /health")
        except BenchmarkError:
            api.stop()
            raise
        self.api = api

    def stop_api(self) -> None:
        """Stop the API (after reading its peak memory)."""
        if self.api is not None:
            self._record_peak(self.api)
            self.api.stop()
            self.api = None

    def start_herald_workers(self, count: int, concurrency: int) -> None:
        """``count`` ``herald worker`` processes of ``concurrency`` prefork children each."""
        for _ in range(count):
            name = self._node("herald")
            argv = [_herald(), "worker", f"--concurrency={concurrency}", f"--hostname={name}"]
            self.workers.append(self._start("herald worker", argv))

    def start_celery_workers(self, count: int, concurrency: int) -> None:
        """``count`` raw Celery workers on the run's raw queue, with herald's settings."""
        for _ in range(count):
            argv = [
                sys.executable,
                "-m",
                "benchmarks.baseline",
                f"--broker={self.env.broker_url}",
                f"--queue={self.env.raw_queue}",
                f"--marks={self.env.marks_dir}",
                f"--concurrency={concurrency}",
                f"--name={self._node('celery')}",
            ]
            self.workers.append(self._start("celery worker", argv))

    def wait_workers_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Return once every running worker answers a ping (it consumes from then on)."""
        pending = set(self.nodes)
        pinger = Celery("bench-ping", broker=self.env.broker_url)

        def ready() -> bool:
            self.check()
            for reply in pinger.control.ping(destination=sorted(pending), timeout=0.5):
                pending.difference_update(reply)
            return not pending

        try:
            wait_for(ready, timeout, f"workers {', '.join(sorted(pending))} to answer a ping")
        finally:
            pinger.close()

    def check(self) -> None:
        """Raise :class:`BenchmarkError` if a process of the run has died."""
        for process in [self.api, *self.workers]:
            if process is not None:
                process.check()

    def worker_pids(self) -> list[int]:
        """Every process of the running workers: main processes and their pool children."""
        return [pid for worker in self.workers for pid in process_tree(worker.pid)]

    def stop_workers(self) -> None:
        """Stop every worker (warm shutdown), reading peak memory first."""
        for worker in self.workers:
            self._record_peak(worker)
            worker.terminate()  # all at once: warm shutdowns overlap
        for worker in self.workers:
            worker.stop()
        self.workers = []
        self.nodes = []

    def purge(self) -> None:
        """Empty the run's queues."""
        purge_queues(self.env.broker_url, self.env.queue_prefix)

    def close(self) -> None:
        """Stop everything still running."""
        self.stop_workers()
        self.stop_api()

    def peak_memory(self) -> list[PeakMemory]:
        """Per role: the most processes in one tree, the largest VmHWM, of a main and of a child."""
        return [
            PeakMemory(
                role=role,
                processes=peak.processes,
                max_rss_mb=round(max(peak.main_kb, peak.child_kb) / 1024, 1),
                main_rss_mb=round(peak.main_kb / 1024, 1),
                child_rss_mb=round(peak.child_kb / 1024, 1),
            )
            for role, peak in sorted(self._peaks.items())
        ]

    def _node(self, system: str) -> str:
        name = f"bench-{system}-{os.getpid()}-{self._started + 1}@{socket.gethostname()}"
        self.nodes.append(name)
        return name

    def _start(self, role: str, argv: list[str]) -> Process:
        self._started += 1
        log = self.env.work_dir / "logs" / f"{role.replace(' ', '-')}-{self._started}.log"
        return Process(role, argv, self.env.environ(), log)

    def _record_peak(self, process: Process) -> None:
        peaks = process.peak_rss_kb()
        if peaks:
            self._peaks[process.role] = fold_peak(self._peaks.get(process.role), process.pid, peaks)


@dataclass(frozen=True)
class RolePeak:
    """The peaks of every process of a role seen so far, in kB."""

    processes: int
    main_kb: int
    child_kb: int


def fold_peak(previous: RolePeak | None, root: int, peaks: dict[int, int]) -> RolePeak:
    """``previous`` with one more process tree: its main process ``root`` and its children."""
    children = [kb for pid, kb in peaks.items() if pid != root]
    seen = previous or RolePeak(0, 0, 0)
    return RolePeak(
        processes=max(seen.processes, len(peaks)),
        main_kb=max(seen.main_kb, peaks.get(root, 0)),
        child_kb=max(seen.child_kb, *children, 0),
    )


def _herald() -> str:
    """The ``herald`` script of the interpreter running the benchmark."""
    script = Path(sys.executable).with_name("herald")
    if not script.exists():
        raise BenchmarkError(f"{script} not found: install herald (`make install`) first")
    return str(script)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(url: str, process: Process | None) -> bool:
    if process is not None:
        process.check()
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
