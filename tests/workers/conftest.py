"""Fixtures of the engine tests: an in-process runtime on the real database, real workers.

``rt`` runs the engine functions in the test process with a Celery stand-in
that records what would be published (``drain`` then plays it). ``start_worker``
starts ``herald worker`` subprocesses on the test's database, broker and queue
prefix, waits until each is ready, and stops them after the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from tests.support import RedisServer, start_serve
from workers import tasks
from workers.celery_app import DISPATCH_TASK, TASK_HEADER, WORKFLOW_HEADER
from workers.runtime import Runtime
from workflows.engine.claim import Claim, claim
from workflows.ids import new_id
from workflows.loading.loader import load_project
from workflows.model import EventStatus, ExecutionStatus, Project
from workflows.settings import Settings
from workflows.store import db
from workflows.store.models import Event, Execution, Step, utcnow

ENGINE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "engine"
REPO = Path(__file__).resolve().parents[2]
HERALD = str(Path(sys.executable).parent / "herald")


@dataclass
class Sent:
    """One message the engine published."""

    name: str
    args: list[Any]
    options: dict[str, Any]


@dataclass
class RecordingCelery:
    """Stands in for the Celery app: records ``send_task`` calls instead of publishing."""

    sent: list[Sent] = field(default_factory=list)

    def send_task(self, name: str, args: list[Any] | None = None, **options: Any) -> None:
        self.sent.append(Sent(name, list(args or []), options))


@pytest.fixture(scope="session")
def engine_project() -> Project:
    """The engine fixture project, loaded."""
    return load_project(ENGINE_DIR)


@pytest.fixture
def rt(pg_url: str, clean_db: Engine, engine_project: Project) -> Iterator[Runtime]:
    """A runtime on the test database whose publishes are recorded, not sent."""
    settings = Settings(project_dir=ENGINE_DIR, database_url=pg_url, broker_url="memory://")
    runtime = Runtime(
        settings=settings,
        project=engine_project,
        engine=clean_db,
        sessions=db.make_sessionmaker(clean_db),
        celery=RecordingCelery(),  # type: ignore[arg-type]
        hostname="test-host",
    )
    yield runtime


def accept(
    sessions: sessionmaker[Session], project: Project, name: str, payload: dict[str, Any]
) -> tuple[str, list[str]]:
    """Store an accepted event the way the API does (routes fixed now); its and routes' ids."""
    routes = [
        {"workflow_id": wf.id, "version": wf.version, "execution_id": new_id("exe")}
        for wf in project.workflows.values()
        if any(trigger.name == name for trigger in wf.triggers)
    ]
    event_id = new_id("evt")
    with sessions.begin() as session:
        session.add(
            Event(
                id=event_id,
                name=name,
                payload=payload,
                status=EventStatus.ACCEPTED.value if routes else EventStatus.UNROUTED.value,
                routes=routes,
                token_name="test",
                publish_count=0,
            )
        )
    return event_id, [route["execution_id"] for route in routes]


def drain(rt: Runtime, *, limit: int = 100, named: bool = True) -> int:
    """Play every recorded message in order (and those they cause); returns how many ran.

    ``named=False`` plays a step's message without the workflow and task it names
    (as from a publisher that does not send them): its step takes the general path.
    """
    celery: RecordingCelery = rt.celery  # type: ignore[assignment]
    played = 0
    while celery.sent and played < limit:
        message = celery.sent.pop(0)
        countdown = message.options.get("countdown") or 0
        if countdown:
            time.sleep(min(countdown, 1.0))  # a retry's backoff: short in the fixtures
        if message.name == DISPATCH_TASK:
            tasks.dispatch(rt, message.args[0])
        else:
            headers = (message.options.get("headers") or {}) if named else {}
            tasks.run_step(
                rt,
                message.args[0],
                worker="test-worker",
                workflow_id=headers.get(WORKFLOW_HEADER),
                task_id=headers.get(TASK_HEADER),
            )
        played += 1
    return played


def claim_step(rt: Runtime, step_id: str, *, worker: str) -> Claim:
    """Claim a step the way a worker does, and leave it running (as a worker that died)."""
    with rt.sessions.begin() as session:
        claimed = claim(
            session,
            rt.project,
            step_id,
            worker=worker,
            redelivered=False,
            redelivery_cap=rt.settings.redelivery_cap,
            now=utcnow(),
        )
    assert claimed.claim is not None, claimed
    return claimed.claim


def snapshot(sessions: sessionmaker[Session], execution_ids: list[str]) -> dict[str, Any]:
    """The rows a run left: executions and their steps, without timings."""
    with sessions() as session:
        executions = session.scalars(
            select(Execution).where(Execution.id.in_(execution_ids)).order_by(Execution.id)
        ).all()
        step_rows = session.scalars(
            select(Step)
            .where(Step.execution_id.in_(execution_ids))
            .order_by(Step.execution_id, Step.seq)
        ).all()
        return {
            "executions": [
                (e.id, e.workflow_id, e.status, e.step_count, e.output) for e in executions
            ],
            "steps": [
                (s.execution_id, s.seq, s.task_id, s.visit, s.status, s.attempts, s.output)
                for s in step_rows
            ],
        }


def wait_for(
    condition: Callable[[], Any], *, timeout: float = 20.0, what: str = "condition"
) -> Any:
    """Poll ``condition`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def execution_statuses(sessions: sessionmaker[Session], ids: list[str]) -> dict[str, str]:
    """Each execution's status now."""
    with sessions() as session:
        rows = session.execute(select(Execution.id, Execution.status).where(Execution.id.in_(ids)))
        return dict(rows.all())


def all_finished(sessions: sessionmaker[Session], ids: list[str]) -> bool:
    """Every execution exists and has finished."""
    statuses = execution_statuses(sessions, ids)
    return len(statuses) == len(ids) and all(
        ExecutionStatus(status).finished for status in statuses.values()
    )


@dataclass
class WorkerProcess:
    """A running ``herald worker`` subprocess."""

    proc: subprocess.Popen[bytes]
    log: Path
    hostname: str

    def output(self) -> str:
        """What the worker logged so far."""
        return self.log.read_text(errors="replace")

    def kill_group(self) -> None:
        """SIGKILL the worker's whole process group (main process and pool children), as
        when its host or container dies; then reap it."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """Warm shutdown, then kill if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def worker_env(pg_url: str, redis_url: str, queue_prefix: str) -> dict[str, str]:
    """HERALD_* for a test worker: the test's database, broker and queues; fast recovery."""
    return {
        "HERALD_PROJECT_DIR": str(ENGINE_DIR),
        "HERALD_DATABASE_URL": pg_url,
        "HERALD_BROKER_URL": redis_url,
        "HERALD_QUEUE_PREFIX": queue_prefix,
        "HERALD_SWEEP_INTERVAL": "0.5",
        "HERALD_DISPATCH_DEADLINE": "1",
        "HERALD_STEP_DEADLINE": "3",
        "HERALD_HEARTBEAT_INTERVAL": "1",
        "HERALD_WORKER_DEAD_AFTER": "5",
        "HERALD_SHUTDOWN_GRACE": "5",
        "HERALD_LOG_LEVEL": "INFO",
    }


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, started; stopped after the test."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def start_worker(
    worker_env: dict[str, str], tmp_path: Path, clean_db: Engine
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``herald worker`` subprocesses (stopped after the test); each waits until ready.

    Workers stop before the database is emptied (``clean_db`` is torn down after this).
    """
    started: list[WorkerProcess] = []

    def start(
        *, concurrency: int = 1, pool: str = "prefork", env: dict[str, str] | None = None
    ) -> WorkerProcess:
        hostname = f"test-{uuid.uuid4().hex[:6]}@localhost"
        log = tmp_path / f"worker-{len(started)}.log"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        environ.update(worker_env, **(env or {}))
        handle = log.open("wb")
        proc = subprocess.Popen(
            [HERALD, "worker", "-c", str(concurrency), "-P", pool, "-n", hostname],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=environ,
            cwd=REPO,
            start_new_session=True,  # a process group of its own, to kill whole
        )
        handle.close()
        worker = WorkerProcess(proc, log, hostname)
        started.append(worker)
        wait_for(
            lambda: '"worker.ready"' in worker.output() or proc.poll() is not None,
            timeout=30,
            what="the worker to be ready",
        )
        if proc.poll() is not None:
            pytest.fail(f"herald worker exited with {proc.returncode}:\n{worker.output()}")
        return worker

    yield start
    for worker in started:  # all at once: a warm shutdown takes a few seconds each
        if worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGTERM)
    for worker in started:
        worker.stop()


# -- the flow-control tests' project (routers, sleeps, signals, parallel) -----------------

FLOW_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "flow"
WorkerStarter = Callable[..., WorkerProcess]


@pytest.fixture(scope="session")
def flow_project() -> Project:
    """The flow fixture project, loaded."""
    return load_project(FLOW_DIR)


@pytest.fixture
def frt(pg_url: str, clean_db: Engine, flow_project: Project) -> Iterator[Runtime]:
    """A runtime on the flow project whose publishes are recorded, not sent."""
    yield Runtime(
        settings=Settings(project_dir=FLOW_DIR, database_url=pg_url, broker_url="memory://"),
        project=flow_project,
        engine=clean_db,
        sessions=db.make_sessionmaker(clean_db),
        celery=RecordingCelery(),  # type: ignore[arg-type]
        hostname="test-host",
    )


@pytest.fixture
def flow_worker(start_worker: WorkerStarter) -> WorkerStarter:
    """Start ``herald worker`` on the flow project (as ``start_worker`` does)."""

    def start(**options: Any) -> WorkerProcess:
        env = {"HERALD_PROJECT_DIR": str(FLOW_DIR), **options.pop("env", {})}
        return start_worker(env=env, **options)

    return start


@pytest.fixture
def flow_sessions(clean_db: Engine) -> sessionmaker[Session]:
    """Sessions on the test database, emptied after the test."""
    return db.make_sessionmaker(clean_db)


# -- the API as a real `herald serve` (metrics and trace tests) --------------------------------

#: the token of the ``api`` server
API_TOKEN = "test-token"


@pytest.fixture
def api_env() -> dict[str, str]:
    """More environment for the ``api`` server (a test module may override it)."""
    return {}


@pytest.fixture
def api(
    seed_dir: Path,
    pg_url: str,
    redis_url: str,
    queue_prefix: str,
    tmp_path: Path,
    api_env: dict[str, str],
) -> Iterator[str]:
    """`herald serve --workers 2` on the seed (log: tmp_path/serve.log), with no
    PROMETHEUS_MULTIPROC_DIR given; its URL. Stopped after the test."""
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        HERALD_PROJECT_DIR=str(seed_dir),
        HERALD_DATABASE_URL=pg_url,
        HERALD_API_TOKENS=f"test:{API_TOKEN}",
        HERALD_BROKER_URL=redis_url,
        HERALD_QUEUE_PREFIX=queue_prefix,
        **api_env,
    )
    process, url = start_serve(env, tmp_path / "serve.log", workers=2)
    yield url
    process.terminate()
    process.wait(timeout=15)
