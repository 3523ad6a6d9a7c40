"""Step throughput: fill the queue with workers stopped, then start them and time the drain.

herald: ``N`` events, each starting one execution of ``K`` no-op steps, are
accepted through the API while no worker runs; then ``W`` ``herald worker``
processes start and drain dispatch and steps. Raw Celery: ``N`` chains of ``K``
no-op tasks are published, then ``W`` baseline workers drain them. The rate is
the steady one between the 10th and 90th percentile of step finishes, so that
worker start-up does not count; the drain's wall time is reported beside it.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from benchmarks.apiclient import EventsClient
from benchmarks.baseline import make_baseline, publish_chain, read_marks
from benchmarks.cluster import Cluster
from benchmarks.errors import BenchmarkError
from benchmarks.project import DRAIN_EVENT
from benchmarks.results import DrainRound
from benchmarks.services import wait_for
from benchmarks.stats import steady_rate
from benchmarks.store import count_finished, execution_results, step_times

DRAIN_TIMEOUT = 180.0


def herald_drain(
    cluster: Cluster,
    sessions: sessionmaker[Session],
    round_: int,
    workers: int,
    concurrency: int,
    executions: int,
    steps: int,
) -> DrainRound:
    """Drain ``executions`` executions of ``steps`` steps with ``workers`` herald workers."""
    if cluster.workers:
        raise BenchmarkError("workers must be stopped before the queue is filled")
    client = EventsClient(cluster.events_url, cluster.env.token)
    ids: list[str] = []
    try:
        for i in range(executions):
            ids += client.send(DRAIN_EVENT, {"n": i, "label": "drain"})
    finally:
        client.close()
    cluster.start_herald_workers(workers, concurrency)

    def drained() -> bool:
        cluster.check()
        with sessions() as session:
            return count_finished(session, ids) == len(ids)

    try:
        wait_for(drained, DRAIN_TIMEOUT, f"{len(ids)} herald executions to finish", 0.1)
    finally:
        cluster.stop_workers()
    with sessions() as session:
        statuses = {status for status, _ in execution_results(session, ids).values()}
        times = step_times(session, ids)
    if statuses != {"succeeded"}:
        raise BenchmarkError(f"drained executions ended as {sorted(statuses)}, not all succeeded")
    finishes = [t.finished for t in times if t.finished is not None]
    starts = [t.started for t in times if t.started is not None]
    return DrainRound(
        system="herald",
        round=round_,
        workers=workers,
        concurrency=concurrency,
        executions=len(ids),
        steps_per_execution=steps,
        seconds=max(finishes) - min(starts),
        steps_per_second=steady_rate(finishes),
    )


def celery_drain(
    cluster: Cluster, round_: int, workers: int, concurrency: int, executions: int, steps: int
) -> DrainRound:
    """Drain ``executions`` chains of ``steps`` no-op tasks with ``workers`` raw Celery workers."""
    if cluster.workers:
        raise BenchmarkError("workers must be stopped before the queue is filled")
    env = cluster.env
    app = make_baseline(env.broker_url, env.raw_queue, env.marks_dir)
    runs = [f"drain{round_}w{workers}-{i}" for i in range(executions)]
    try:
        for run in runs:
            publish_chain(app, run, steps)
    finally:
        app.close()
    cluster.start_celery_workers(workers, concurrency)

    def drained() -> bool:
        cluster.check()
        marks = read_marks(env.marks_dir)
        return sum(len(marks.get(run, {})) for run in runs) == executions * steps

    try:
        wait_for(drained, DRAIN_TIMEOUT, f"{executions} raw Celery chains to finish", 0.1)
    finally:
        cluster.stop_workers()
    marks = read_marks(env.marks_dir)
    finishes = [at for run in runs for at in marks[run].values()]
    return DrainRound(
        system="celery",
        round=round_,
        workers=workers,
        concurrency=concurrency,
        executions=executions,
        steps_per_execution=steps,
        seconds=max(finishes) - min(finishes),
        steps_per_second=steady_rate(finishes),
    )
