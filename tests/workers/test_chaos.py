"""Chaos, bounded: 500 events through a 3-step workflow while a worker, Redis and the API die.

Real processes throughout: ``herald serve`` (gunicorn) on a free port, two
``herald worker`` processes, a redis-server of the test's own, the run's
PostgreSQL. Clients post 500 ``chaos.tick`` events at a steady pace over HTTP,
each with its own idempotency key, retrying the same request until it gets a
202 (a retry after a lost answer gets the original back, ``duplicate: true``).
While they post, in turn: a worker's whole process group is SIGKILLed (a fresh
one is started), Redis is restarted empty (every queued message is lost), and
the API's process group is SIGKILLed and started again. Then every accepted
event must have its execution succeeded with the right result, each of its
three steps recorded once, and nothing recorded twice. The counts are printed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from tests.support import RedisServer, free_port
from tests.workers.conftest import REPO, WorkerProcess, wait_for
from workflows.store import db
from workflows.store.models import Event, Execution, Step

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

CHAOS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "chaos"
HERALD = str(Path(sys.executable).parent / "herald")
TOKEN = "chaos-token"
EVENTS = 500
#: events posted per second, so that the chaos strikes while they flow (about 25 s)
RATE = 20.0
CLIENTS = 4
#: the chaos, in turn, once this many events have been accepted
KILL_WORKER_AT, RESTART_REDIS_AT, RESTART_API_AT = 100, 220, 340
#: events accepted while Redis is down
REDIS_DOWN_FOR = 20


class ApiProcess:
    """``herald serve`` in a process group of its own, to kill whole and start again."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until ``/health`` answers 200."""
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(
                [HERALD, "serve", "--bind", f"127.0.0.1:{self.port}", "--workers", "1"],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=REPO,
                start_new_session=True,
            )
        wait_for(self._healthy, timeout=30, what="herald serve to answer /health")

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(f"herald serve exited: {self.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL its process group (the gunicorn arbiter and its workers)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def restart(self) -> None:
        """Kill it, then start it again on the same port."""
        self.kill()
        self.start()


@dataclass
class Posting:
    """What the clients saw."""

    accepted: dict[int, str] = field(default_factory=dict)  # n -> event id
    duplicates: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    #: answers no client should get (a 500, a 4xx), or events never accepted
    unexpected: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _post(url: str, n: int) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"name": "chaos.tick", "payload": {"n": n}, "id": f"chaos-{n}"}).encode()
    request = urllib.request.Request(
        url + "/api/v1/events",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _client(api: ApiProcess, numbers: Iterator[int], started: float, seen: Posting) -> None:
    """Post each event at its turn, and again (same key, same body) until it gets a 202."""
    pause = threading.Event()
    for n in numbers:
        pause.wait(max(0.0, started + n / RATE - time.monotonic()))
        deadline = time.monotonic() + 90
        while True:
            try:
                status, body = _post(api.url, n)
                answer = str(status)
            except (OSError, ValueError) as exc:  # refused, reset, cut short: the API is down
                status, body, answer = 0, {}, type(exc).__name__
            with seen.lock:
                seen.answers[answer] += 1
                if status == 202:
                    seen.accepted[n] = body["event_id"]
                    seen.duplicates += bool(body["data"]["duplicate"])
            if status == 202:
                break
            if status not in (0, 503) or time.monotonic() > deadline:  # down: 0 or 503 only
                with seen.lock:
                    seen.unexpected.append((n, status, body))
                break
            pause.wait(0.1)  # the client's retry pace


@pytest.fixture
def chaos_env(worker_env: dict[str, str], private_redis: RedisServer) -> dict[str, str]:
    """HERALD_* of every process of the test: its database, its Redis, the chaos project."""
    return {
        **worker_env,
        "HERALD_PROJECT_DIR": str(CHAOS_DIR),
        "HERALD_BROKER_URL": private_redis.url,
        "HERALD_API_TOKENS": f"chaos:{TOKEN}",
        "HERALD_DISPATCH_DEADLINE": "3",
        "HERALD_STEP_DEADLINE": "5",
    }


@pytest.fixture
def api(chaos_env: dict[str, str], tmp_path: Path) -> Iterator[ApiProcess]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    process = ApiProcess({**environ, **chaos_env}, tmp_path / "api.log")
    process.start()
    yield process
    process.kill()


def test_500_events_survive_a_killed_worker_a_restarted_redis_and_a_restarted_api(
    private_redis: RedisServer,
    chaos_env: dict[str, str],
    api: ApiProcess,
    start_worker: Callable[..., WorkerProcess],
    clean_db: Engine,
) -> None:
    began = time.monotonic()
    victim = start_worker(concurrency=2, env=chaos_env)
    survivor = start_worker(concurrency=2, env=chaos_env)
    seen = Posting()
    numbers = iter(range(EVENTS))
    next_number = threading.Lock()

    def turns() -> Iterator[int]:
        while True:
            with next_number:
                n = next(numbers, None)
            if n is None:
                return
            yield n

    started = time.monotonic()
    clients = [
        threading.Thread(target=_client, args=(api, turns(), started, seen), daemon=True)
        for _ in range(CLIENTS)
    ]
    for client in clients:
        client.start()
    chaos: list[str] = []

    def accepted_at_least(count: int) -> bool:
        return len(seen.accepted) >= count

    wait_for(lambda: accepted_at_least(KILL_WORKER_AT), timeout=60, what="events to flow")
    victim.kill_group()
    chaos.append(f"worker SIGKILLed at {len(seen.accepted)} accepted")
    replacement = start_worker(concurrency=2, env=chaos_env)
    wait_for(lambda: accepted_at_least(RESTART_REDIS_AT), timeout=60, what="events to flow")
    private_redis.stop()
    down_at = len(seen.accepted)
    # the API keeps accepting (and failing to publish) while the broker is away
    wait_for(lambda: accepted_at_least(down_at + REDIS_DOWN_FOR), timeout=60, what="events")
    private_redis.start()
    chaos.append(f"Redis down from {down_at} to {len(seen.accepted)} accepted, restarted empty")
    wait_for(lambda: accepted_at_least(RESTART_API_AT), timeout=60, what="events to flow")
    api.restart()
    chaos.append(f"API restarted at {len(seen.accepted)} accepted")
    for client in clients:
        client.join(120)
    posted = time.monotonic()
    assert seen.unexpected == []
    assert len(seen.accepted) == EVENTS
    assert all(not client.is_alive() for client in clients)

    sessions = db.make_sessionmaker(clean_db)

    def finished() -> int:
        with sessions() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(Execution)
                    .where(Execution.status.in_(["succeeded", "failed", "cancelled"]))
                )
                or 0
            )

    wait_for(lambda: finished() >= EVENTS, timeout=120, what="every execution to finish")
    done = time.monotonic()
    for worker in (survivor, replacement):  # the broker's restart stopped no worker
        assert worker.proc.poll() is None, worker.output()[-3000:]

    with sessions() as session:
        events = session.scalars(select(Event)).all()
        executions = session.scalars(select(Execution)).all()
        steps = session.scalars(select(Step).order_by(Step.execution_id, Step.seq)).all()
    # every accepted event once (the retries found their key), each routed to one execution
    assert sorted(e.id for e in events) == sorted(seen.accepted.values())
    by_event = {e.id: e for e in events}
    assert all(len(by_event[event_id].routes) == 1 for event_id in seen.accepted.values())
    assert len(executions) == EVENTS
    number_of = {event_id: n for n, event_id in seen.accepted.items()}
    for execution in executions:
        assert execution.status == "succeeded", (execution.id, execution.error)
        assert execution.output == {"result": number_of[execution.event_id or ""] + 3}
        assert execution.step_count == 3
    # every step recorded once: three per execution, in order, each succeeded
    shape: dict[str, list[tuple[int, str, int, str]]] = {}
    for step in steps:
        shape.setdefault(step.execution_id, []).append(
            (step.seq, step.task_id, step.visit, step.status)
        )
    expected = [(n, task, 1, "succeeded") for n, task in ((1, "one"), (2, "two"), (3, "three"))]
    assert len(shape) == EVENTS and all(rows == expected for rows in shape.values())

    attempts = Counter(step.attempts for step in steps)
    print(
        f"\nchaos: {'; '.join(chaos)}"
        f"\n  events accepted {len(seen.accepted)} (answered again as duplicates: "
        f"{seen.duplicates}), client answers {dict(seen.answers)}"
        f"\n  executions {len(executions)} succeeded, steps {len(steps)} recorded once each; "
        f"attempts per step {dict(sorted(attempts.items()))}, "
        f"steps reclaimed from a lost worker {sum(1 for s in steps if s.lost)}, "
        f"steps re-published {sum(1 for s in steps if s.publish_count > 1)}, "
        f"dispatches re-published by the sweep {sum(1 for e in events if e.published_at)}"
        f"\n  posting took {posted - started:.1f} s, everything finished "
        f"{done - posted:.1f} s after the last post, {done - began:.1f} s in all"
    )
