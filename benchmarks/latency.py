"""Low load: how long one piece of work takes from send to finish, herald and raw Celery.

Work is sent at a steady, low rate (well under what the workers can do), so
what is timed is the path itself, not a queue. herald: ``POST`` of an event to
its 3-step execution succeeded (finish time read from the database). Raw Celery:
publishing a 3-task chain to its last task's mark. Per step: the time from the
first step's finish to the last's, divided by the hops between them.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from benchmarks.apiclient import EventsClient
from benchmarks.baseline import make_baseline, publish_chain, read_marks
from benchmarks.cluster import Cluster
from benchmarks.errors import BenchmarkError
from benchmarks.project import E2E_EVENT
from benchmarks.results import LatencyRound
from benchmarks.services import wait_for
from benchmarks.stats import Summary
from benchmarks.store import count_finished, execution_results, step_times

STEPS = 3
FINISH_TIMEOUT = 60.0


def paced(count: int, rate: float, send: Callable[[int], None]) -> None:
    """Call ``send(i)`` ``count`` times, ``rate`` times a second (open loop)."""
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # pacing the sender, not waiting for work
        send(i)


Samples = dict[str, list[float]]


def herald_round(
    cluster: Cluster, sessions: sessionmaker[Session], round_: int, count: int, rate: float
) -> tuple[LatencyRound, Samples]:
    """``count`` events at ``rate``/s; end-to-end and per-step latency from the database."""
    client = EventsClient(cluster.events_url, cluster.env.token)
    sent: dict[str, float] = {}

    def send(i: int) -> None:
        at = time.time()
        for execution_id in client.send(E2E_EVENT, {"n": i, "label": "latency"}):
            sent[execution_id] = at

    try:
        paced(count, rate, send)
    finally:
        client.close()
    ids = list(sent)

    def finished() -> bool:
        cluster.check()
        with sessions() as session:
            return count_finished(session, ids) == len(ids)

    wait_for(finished, FINISH_TIMEOUT, f"{len(ids)} herald executions to finish", interval=0.1)
    with sessions() as session:
        results = execution_results(session, ids)
        steps = step_times(session, ids)
    failed = [i for i, (status, _) in results.items() if status != "succeeded"]
    if failed:
        raise BenchmarkError(f"{len(failed)} executions did not succeed, e.g. {failed[0]}")
    end_to_end = [(results[i][1] - sent[i]) * 1000 for i in ids]
    by_execution = defaultdict(list)
    for step in steps:
        by_execution[step.execution_id].append(step)
    per_step, first, runs, recorded, picked = [], [], [], [], []
    for execution_id, ordered in by_execution.items():
        done = [s.finished for s in ordered if s.finished is not None]
        started = [s.started for s in ordered if s.started is not None]
        queued = [s.queued for s in ordered]
        if len(done) != STEPS or len(started) != STEPS:
            raise BenchmarkError(f"execution {execution_id} has {len(done)} finished steps")
        per_step.append((done[-1] - done[0]) / (STEPS - 1) * 1000)
        first.append((started[0] - sent[execution_id]) * 1000)
        runs += [(done[i] - started[i]) * 1000 for i in range(STEPS)]
        recorded += [(queued[i + 1] - done[i]) * 1000 for i in range(STEPS - 1)]
        picked += [(started[i + 1] - queued[i + 1]) * 1000 for i in range(STEPS - 1)]
    breakdown = {
        "POST to 1st step start": statistics.median(first),
        "step started to finished": statistics.median(runs),
        "finished to next queued": statistics.median(recorded),
        "next queued to started": statistics.median(picked),
    }
    summary = LatencyRound(
        "herald", round_, Summary.of(end_to_end), Summary.of(per_step), breakdown
    )
    return summary, {"end_to_end herald": end_to_end, "per_step herald": per_step}


def celery_round(
    cluster: Cluster, round_: int, count: int, rate: float
) -> tuple[LatencyRound, Samples]:
    """``count`` chains of 3 no-op tasks at ``rate``/s; latency from the tasks' marks."""
    env = cluster.env
    app = make_baseline(env.broker_url, env.raw_queue, env.marks_dir)
    sent: dict[str, float] = {}

    def send(i: int) -> None:
        run = f"latency{round_}-{i}"
        sent[run] = time.time()
        publish_chain(app, run, STEPS)

    try:
        paced(count, rate, send)
    finally:
        app.close()

    def finished() -> bool:
        cluster.check()
        marks = read_marks(env.marks_dir)
        return all(STEPS - 1 in marks.get(run, {}) for run in sent)

    wait_for(finished, FINISH_TIMEOUT, f"{len(sent)} raw Celery chains to finish", interval=0.1)
    marks = read_marks(env.marks_dir)
    end_to_end = [(marks[run][STEPS - 1] - at) * 1000 for run, at in sent.items()]
    per_step = [(marks[run][STEPS - 1] - marks[run][0]) / (STEPS - 1) * 1000 for run in sent]
    summary = LatencyRound("celery", round_, Summary.of(end_to_end), Summary.of(per_step))
    return summary, {"end_to_end celery": end_to_end, "per_step celery": per_step}
