"""Flower shows herald's work: a real broker, a real worker with task events, a real event.

Flower is started as docker-compose.yml starts it (``celery --broker=... flower``,
basic auth on); a ``herald worker`` subprocess runs the examples; the seed's event
goes in through the API; Flower's HTTP API must then list the worker and herald's
tasks under readable names (``herald.*``) with their arguments (ids, not payloads).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine

from tests.support import free_port, wait_for
from tests.test_examples import EXAMPLES, SEED_EVENT
from workflows.settings import ApiToken, Settings

BIN = Path(sys.executable).parent
AUTH = "admin:flower-secret"
T = TypeVar("T")

pytestmark = pytest.mark.timeout(180)


class Flower:
    """Flower's HTTP API, with basic auth."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.auth = "Basic " + base64.b64encode(AUTH.encode()).decode()

    def get(self, path: str) -> Any:
        request = urllib.request.Request(self.url + path, headers={"Authorization": self.auth})
        with urllib.request.urlopen(request, timeout=15) as response:
            return json.loads(response.read())

    def up(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/healthcheck", timeout=2) as response:
                return response.read() == b"OK"
        except OSError:
            return False


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def services(
    pg_url: str, clean_db: Engine, redis_url: str, queue_prefix: str, tmp_path: Path
) -> Iterator[tuple[Flower, str]]:
    """Flower, then a herald worker (task events on) on the test's database and queues."""
    env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "HERALD_DATABASE_URL": pg_url,
        "HERALD_BROKER_URL": redis_url,
        "HERALD_QUEUE_PREFIX": queue_prefix,
        "HERALD_PROJECT_DIR": str(EXAMPLES),
        "EXAMPLES_OUTBOX": str(tmp_path / "outbox"),
        "FLOWER_BASIC_AUTH": AUTH,
    }
    port = free_port()
    flower = Flower(port)
    node = f"flower-test-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    processes = [
        start(
            [
                str(BIN / "celery"),
                f"--broker={redis_url}",
                "flower",
                f"--port={port}",
                "--address=127.0.0.1",
            ],
            env,
            tmp_path / "flower.log",
        ),
    ]
    try:
        wait_for("Flower to answer", flower.up)
        processes.append(
            start(
                [
                    str(BIN / "herald"),
                    "worker",
                    "--concurrency",
                    "2",
                    "--pool",
                    "threads",
                    "--hostname",
                    node,
                ],
                env,
                tmp_path / "worker.log",
            )
        )
        wait_for("Flower to list the worker", lambda: node in flower.get("/api/workers?refresh=1"))
        yield flower, node
    finally:
        for process in reversed(processes):
            stop(process)


def test_flower_lists_herald_tasks_with_names_and_arguments(
    services: tuple[Flower, str],
    pg_url: str,
    redis_url: str,
    queue_prefix: str,
    test_token: ApiToken,
) -> None:
    from app import create_app

    flower, node = services
    app = create_app(
        Settings(
            project_dir=EXAMPLES,
            database_url=pg_url,
            broker_url=redis_url,
            queue_prefix=queue_prefix,
            api_tokens=(test_token,),
        )
    )
    state = app.extensions["herald"]
    try:
        answer = app.test_client().post(
            "/api/v1/events",
            json=SEED_EVENT,
            headers={"Authorization": f"Bearer {test_token.secret}"},
        )
    finally:
        state.engine.dispose()
        state.publisher.celery.close()
    assert answer.status_code == 202, answer.get_json()
    event_id = answer.get_json()["event_id"]

    def herald_tasks() -> dict[str, list[dict[str, Any]]] | None:
        tasks = flower.get(f"/api/tasks?workername={node}")
        by_name: dict[str, list[dict[str, Any]]] = {}
        for task in tasks.values():
            by_name.setdefault(task["name"], []).append(task)
        done = [t for t in by_name.get("herald.run_step", []) if t["state"] == "SUCCESS"]
        # 2 workflows: 3 notification steps + at least 4 order steps run as tools
        return by_name if len(done) >= 7 and "herald.run_agent_step" in by_name else None

    by_name = wait_for("Flower to show the steps", herald_tasks)

    [dispatch] = by_name["herald.dispatch_event"]
    assert dispatch["state"] == "SUCCESS" and dispatch["worker"] == node
    assert event_id in dispatch["args"]  # readable: the event id, as the API published it
    for task in by_name["herald.run_step"] + by_name["herald.run_agent_step"]:
        assert task["args"].startswith("['stp_"), task
    assert set(by_name) <= {"herald.dispatch_event", "herald.run_step", "herald.run_agent_step"}
    assert SEED_EVENT["payload"]["customerEmail"] not in json.dumps(by_name)  # ids, no payloads
