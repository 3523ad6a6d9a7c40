"""The run's own services: a fresh Postgres database, unique Redis queues, child processes.

Postgres and Redis are found like herald finds them (``HERALD_DATABASE_URL``,
``HERALD_BROKER_URL``; ``HERALD_BENCH_DATABASE_URL`` wins for the benchmark), with
local defaults. Only the server part of the database URL is used: the run creates
``herald_bench_<pid>`` and drops it afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from benchmarks.errors import BenchmarkError
from workflows.store import db

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Endpoints:
    """Where Postgres (its server, not a database) and Redis are."""

    server_url: str
    broker_url: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Endpoints:
        """From ``HERALD_BENCH_DATABASE_URL`` or ``HERALD_DATABASE_URL``, ``HERALD_BROKER_URL``."""
        env = os.environ if environ is None else environ
        database = (
            env.get("HERALD_BENCH_DATABASE_URL")
            or env.get("HERALD_DATABASE_URL")
            or DEFAULT_DATABASE_URL
        )
        if not database.startswith(("postgres://", "postgresql")):
            raise BenchmarkError(f"the benchmark needs PostgreSQL, not {database.split(':')[0]}")
        return cls(
            server_url=db.normalize_url(database),
            broker_url=env.get("HERALD_BROKER_URL") or DEFAULT_BROKER_URL,
        )


@contextmanager
def bench_database(server_url: str, name: str) -> Iterator[str]:
    """Create database ``name`` on the server, migrate it, yield its URL, drop it after."""
    server = make_url(server_url)
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    where = server.render_as_string(hide_password=True)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except SQLAlchemyError as exc:
        admin.dispose()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise BenchmarkError(f"cannot create database {name} on {where}: {reason}") from None
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        db.upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def check_redis(broker_url: str) -> None:
    """Raise :class:`BenchmarkError` unless Redis answers."""
    import redis

    try:
        redis.Redis.from_url(broker_url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        raise BenchmarkError(f"Redis at {broker_url} does not answer: {exc}") from None


def purge_queues(broker_url: str, prefix: str) -> int:
    """Delete every Redis key of the run's queues (named ``<prefix>...``); how many went."""
    import redis

    client = redis.Redis.from_url(broker_url)
    try:
        keys = [*client.scan_iter(match=f"*{prefix}*", count=1000)]
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds have passed (False)."""
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            return False
        time.sleep(interval)
    return True


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll ``condition`` until it holds, or raise :class:`BenchmarkError` naming ``what``."""
    if not wait_until(condition, timeout, interval):
        raise BenchmarkError(f"timed out after {timeout:.0f} s waiting for {what}")


class Process:
    """A child process in its own session, logging to a file, with its tree's peak memory."""

    def __init__(self, role: str, argv: list[str], env: Mapping[str, str], log: Path) -> None:
        self.role = role
        self.log = log
        self._log_file = log.open("ab")
        self.popen = subprocess.Popen(
            argv,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.popen.pid

    def check(self) -> None:
        """Raise :class:`BenchmarkError`, with the end of its log, if the process has exited."""
        code = self.popen.poll()
        if code is not None:
            tail = self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
            lines = "\n".join(tail)
            raise BenchmarkError(f"{self.role} exited with code {code}; {self.log}:\n{lines}")

    def peak_rss_kb(self) -> dict[int, int]:
        """VmHWM (peak resident set, kB) of the process and each of its descendants."""
        return {pid: kb for pid in process_tree(self.pid) if (kb := peak_rss_kb(pid)) is not None}

    def terminate(self) -> None:
        """Ask for a warm shutdown (SIGTERM); :meth:`stop` waits for it."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (a warm shutdown), then SIGKILL to its process group if it hangs."""
        self.terminate()
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(5)
        self._log_file.close()


def process_tree(root: int) -> list[int]:
    """``root`` and every descendant still running, read from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def peak_rss_kb(pid: int) -> int | None:
    """The process's peak resident set size (VmHWM) in kB, or ``None`` if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return parse_vmhwm(status)


def parse_vmhwm(status: str) -> int | None:
    """``VmHWM`` in kB from the text of ``/proc/<pid>/status`` (absent for kernel threads)."""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None
