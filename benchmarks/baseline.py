"""The raw Celery baseline: a chain of no-op tasks with herald's broker and worker settings.

The baseline app copies the settings that decide a hop's cost from herald's own
Celery app (JSON, acks_late, prefetch 1, results ignored, task events on), so
the two differ only by what herald does per step. Each task appends
``<run> <index> <time>`` to a per-process file: one write, no broker round trip.

A worker runs as ``python -m benchmarks.baseline --broker URL --queue Q --marks DIR``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from celery import Celery, chain

from workers.celery_app import make_celery
from workflows.settings import Settings

HOP_TASK = "bench.hop"

#: the settings copied from herald's Celery app
SHARED_SETTINGS = (
    "task_serializer",
    "accept_content",
    "result_serializer",
    "task_ignore_result",
    "result_backend",
    "task_acks_late",
    "task_reject_on_worker_lost",
    "worker_prefetch_multiplier",
    "broker_connection_retry_on_startup",
    "broker_transport_options",
    "worker_send_task_events",
    "task_send_sent_event",
    "worker_hijack_root_logger",
)

_marks: dict[int, TextIO] = {}


def make_baseline(broker_url: str, queue: str, marks_dir: Path) -> Celery:
    """A Celery app whose only task, ``bench.hop``, marks the time and returns."""
    herald = make_celery(Settings(broker_url=broker_url, database_url="sqlite://"))
    app = Celery("bench-baseline", broker=broker_url)
    app.conf.update({key: herald.conf[key] for key in SHARED_SETTINGS})
    app.conf.task_default_queue = queue

    def hop(run: str, index: int) -> None:
        """A no-op step: record when it ran."""
        _mark(marks_dir, run, index)

    app.task(name=HOP_TASK, shared=False)(hop)  # this app only: every round builds one
    return app


def _mark(marks_dir: Path, run: str, index: int) -> None:
    pid = os.getpid()
    out = _marks.get(pid)
    if out is None:
        out = _marks[pid] = (marks_dir / f"{pid}.marks").open("a", buffering=1, encoding="utf-8")
    out.write(f"{run} {index} {time.time():.6f}\n")


def publish_chain(app: Celery, run: str, steps: int) -> None:
    """Publish a chain of ``steps`` hops for ``run`` (only the first message goes out now)."""
    chain(*(app.signature(HOP_TASK, args=(run, i), immutable=True) for i in range(steps))).delay()


def read_marks(marks_dir: Path) -> dict[str, dict[int, float]]:
    """Every mark written so far: run -> step index -> wall-clock time it ran."""
    runs: dict[str, dict[int, float]] = defaultdict(dict)
    for path in marks_dir.glob("*.marks"):
        # the text after the last newline is a line still being written: left for later
        for line in path.read_text(encoding="utf-8").split("\n")[:-1]:
            run, index, at = line.split()
            runs[run][int(index)] = float(at)
    return runs


def worker_argv(queue: str, concurrency: int, pool: str, name: str) -> list[str]:
    """The ``celery worker`` arguments a baseline worker runs with."""
    return [
        "worker",
        f"--queues={queue}",
        f"--concurrency={concurrency}",
        f"--pool={pool}",
        f"--hostname={name}",
        "--loglevel=WARNING",
        # as `herald worker` runs: no start-up sync with, or gossip from, other workers
        "--without-mingle",
        "--without-gossip",
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """Run one baseline worker process."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baseline", description=__doc__)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--marks", required=True, type=Path)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--pool", default="prefork")
    parser.add_argument("--name", default="bench-celery@%h")
    args = parser.parse_args(argv)
    args.marks.mkdir(parents=True, exist_ok=True)
    app = make_baseline(args.broker, args.queue, args.marks)
    app.worker_main(worker_argv(args.queue, args.concurrency, args.pool, args.name))


if __name__ == "__main__":
    main()
