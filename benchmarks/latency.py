"""Low load: how long one piece of work takes from send to finish, herald and raw Celery.

One piece of work is in flight at a time (the next is sent when the previous
has finished), so what is timed is the path itself, never a queue, however fast
or slow the system under test is. herald: ``POST`` of an event to
its 3-step execution succeeded (finish time read from the database). Raw Celery:
publishing a 3-task chain to its last task's mark. Per step: the time from the
first step's finish to the last's, divided by the hops between them.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict

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


#: how often the run looks whether the work it sent has finished (finish times come
#: from the database or the marks, so this bounds nothing but the phase's length)
POLL = 0.005


Samples = dict[str, list[float]]


def herald_round(
    cluster: Cluster, sessions: sessionmaker[Session], round_: int, count: int
) -> tuple[LatencyRound, Samples]:
    """``count`` events one after the other; end-to-end and per-step latency from the database."""
    client = EventsClient(cluster.events_url, cluster.env.token)
    sent: dict[str, float] = {}
    try:
        for i in range(count):
            at = time.time()
            new = client.send(E2E_EVENT, {"n": i, "label": "latency"})
            sent.update(dict.fromkeys(new, at))

            def finished(ids: list[str] = new) -> bool:
                cluster.check()
                with sessions() as session:
                    return count_finished(session, ids) == len(ids)

            wait_for(finished, FINISH_TIMEOUT, f"herald execution(s) {new} to finish", POLL)
    finally:
        client.close()
    ids = list(sent)
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
    per_step, first, runs, gaps = [], [], [], []
    for execution_id, ordered in by_execution.items():
        done = [s.finished for s in ordered if s.finished is not None]
        started = [s.started for s in ordered if s.started is not None]
        if len(done) != STEPS or len(started) != STEPS:
            raise BenchmarkError(f"execution {execution_id} has {len(done)} finished steps")
        per_step.append((done[-1] - done[0]) / (STEPS - 1) * 1000)
        first.append((started[0] - sent[execution_id]) * 1000)
        runs += [(done[i] - started[i]) * 1000 for i in range(STEPS)]
        gaps += [(started[i + 1] - done[i]) * 1000 for i in range(STEPS - 1)]
    breakdown = {
        "POST to 1st step start": statistics.median(first),
        "step started to finished": statistics.median(runs),
        "step finished to next started": statistics.median(gaps),
    }
    summary = LatencyRound(
        "herald", round_, Summary.of(end_to_end), Summary.of(per_step), breakdown
    )
    return summary, {"end_to_end herald": end_to_end, "per_step herald": per_step}


def celery_round(cluster: Cluster, round_: int, count: int) -> tuple[LatencyRound, Samples]:
    """``count`` chains of 3 no-op tasks one after the other; latency from the tasks' marks."""
    env = cluster.env
    app = make_baseline(env.broker_url, env.raw_queue, env.marks_dir)
    sent: dict[str, float] = {}
    try:
        for i in range(count):
            run = f"latency{round_}-{i}"
            sent[run] = time.time()
            publish_chain(app, run, STEPS)

            def finished(run: str = run) -> bool:
                cluster.check()
                return STEPS - 1 in read_marks(env.marks_dir).get(run, {})

            wait_for(finished, FINISH_TIMEOUT, f"raw Celery chain {run} to finish", POLL)
    finally:
        app.close()
    marks = read_marks(env.marks_dir)
    end_to_end = [(marks[run][STEPS - 1] - at) * 1000 for run, at in sent.items()]
    per_step = [(marks[run][STEPS - 1] - marks[run][0]) / (STEPS - 1) * 1000 for run in sent]
    summary = LatencyRound("celery", round_, Summary.of(end_to_end), Summary.of(per_step))
    return summary, {"end_to_end celery": end_to_end, "per_step celery": per_step}
