"""Step throughput: fill the queue with workers stopped, then start them and time the drain.

herald: ``N`` events, each starting one execution of ``K`` no-op steps, are
accepted through the API while no worker runs; then ``W`` ``herald worker``
processes start and drain dispatch and steps. Raw Celery: ``N`` chains of ``K``
no-op tasks are published, then ``W`` baseline workers drain them. The rate is
the steady one between the 10th and 90th percentile of step finishes, so that
worker start-up does not count. A drain that outlasts ``limit`` seconds after
every worker answered a ping is stopped there and its rate taken from the
steps it finished (``partial``), so that a slow system cannot stretch the run
past its time budget. What the machine, Postgres and Redis did is read over the
same window as the rate (:mod:`benchmarks.resources`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from benchmarks.apiclient import EventsClient
from benchmarks.baseline import make_baseline, publish_chain, read_marks
from benchmarks.cluster import Cluster
from benchmarks.errors import BenchmarkError
from benchmarks.project import DRAIN_EVENT
from benchmarks.resources import ResourceMonitor, ResourceUse, Snapshot, use_between
from benchmarks.results import DrainRound, System
from benchmarks.services import wait_until
from benchmarks.stats import steady_rate, steady_window
from benchmarks.store import count_finished, execution_results, step_times

#: a drain must finish at least this many steps to give a rate
MIN_STEPS = 20


@dataclass(frozen=True)
class DrainPlan:
    """One drain: how many executions of how many steps, on how many workers, for how long."""

    round: int
    workers: int
    concurrency: int
    executions: int
    steps: int
    limit: float

    def result(
        self,
        system: System,
        starts: list[float],
        finishes: list[float],
        resources: ResourceUse | None = None,
    ) -> DrainRound:
        """The round's figures from the start and finish times of the steps that finished."""
        if len(finishes) < MIN_STEPS:
            raise BenchmarkError(
                f"{system} finished {len(finishes)} steps in {self.limit:.0f} s; "
                f"a rate needs at least {MIN_STEPS}"
            )
        return DrainRound(
            system=system,
            round=self.round,
            workers=self.workers,
            concurrency=self.concurrency,
            executions=self.executions,
            steps_per_execution=self.steps,
            steps_done=len(finishes),
            seconds=max(finishes) - min(starts),
            steps_per_second=steady_rate(finishes),
            resources=resources,
        )


def herald_drain(
    cluster: Cluster,
    sessions: sessionmaker[Session],
    plan: DrainPlan,
    monitor: ResourceMonitor | None = None,
) -> DrainRound:
    """Drain ``plan.executions`` herald executions with ``plan.workers`` herald workers.

    ``monitor`` samples the machine, Postgres and Redis from before the workers
    start; the drain keeps what it measured over the window its rate is taken over.
    """
    if cluster.workers:
        raise BenchmarkError("workers must be stopped before the queue is filled")
    client = EventsClient(cluster.events_url, cluster.env.token)
    ids: list[str] = []
    try:
        for i in range(plan.executions):
            ids += client.send(DRAIN_EVENT, {"n": i, "label": "drain"})
    finally:
        client.close()

    def drained() -> bool:
        cluster.check()
        with sessions() as session:
            return count_finished(session, ids) == len(ids)

    complete, watched = _drain(cluster, plan, cluster.start_herald_workers, drained, monitor)
    with sessions() as session:
        statuses = {status for status, _ in execution_results(session, ids).values()}
        times = step_times(session, ids)
    if complete and statuses != {"succeeded"}:
        raise BenchmarkError(f"drained executions ended as {sorted(statuses)}, not all succeeded")
    finishes = [t.finished for t in times if t.finished is not None]
    starts = [t.started for t in times if t.started is not None]
    return plan.result("herald", starts, finishes, watched.over(finishes))


def celery_drain(
    cluster: Cluster, plan: DrainPlan, monitor: ResourceMonitor | None = None
) -> DrainRound:
    """Drain ``plan.executions`` chains of no-op tasks with ``plan.workers`` raw Celery workers."""
    if cluster.workers:
        raise BenchmarkError("workers must be stopped before the queue is filled")
    env = cluster.env
    app = make_baseline(env.broker_url, env.raw_queue, env.marks_dir)
    runs = [f"drain{plan.round}w{plan.workers}-{i}" for i in range(plan.executions)]
    try:
        for run in runs:
            publish_chain(app, run, plan.steps)
    finally:
        app.close()

    def drained() -> bool:
        cluster.check()
        marks = read_marks(env.marks_dir)
        return sum(len(marks.get(run, {})) for run in runs) == len(runs) * plan.steps

    _, watched = _drain(cluster, plan, cluster.start_celery_workers, drained, monitor)
    marks = read_marks(env.marks_dir)
    finishes = [at for run in runs for at in marks.get(run, {}).values()]
    return plan.result("celery", finishes, finishes, watched.over(finishes))


@dataclass(frozen=True)
class Watched:
    """The monitor's samples of one drain and the pids of its workers."""

    snapshots: list[Snapshot]
    worker_pids: list[int]

    def over(self, finishes: list[float]) -> ResourceUse | None:
        """What the steady window of these finishes cost (None without samples)."""
        if len(finishes) < 2:
            return None
        start, end = steady_window(finishes)
        return use_between(self.snapshots, start, end, self.worker_pids)


def _drain(
    cluster: Cluster,
    plan: DrainPlan,
    start: Callable[[int, int], None],
    drained: Callable[[], bool],
    monitor: ResourceMonitor | None,
) -> tuple[bool, Watched]:
    """Start the workers, wait for ``drained`` (at most ``plan.limit`` after their ping), stop."""
    if monitor is not None:
        monitor.start()
    pids: list[int] = []
    try:
        start(plan.workers, plan.concurrency)
        cluster.wait_workers_ready()
        complete = wait_until(drained, plan.limit, interval=0.1)
        pids = cluster.worker_pids()
    finally:
        snapshots = monitor.stop() if monitor is not None else []
        cluster.stop_workers()
    return complete, Watched(snapshots, pids)
