"""After a broker outage, the sweep drains the backlog of accepted events at broker speed."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, func, insert, select

from tests.support import free_port
from tests.workers.conftest import ENGINE_DIR, wait_for
from workers import sweep
from workflows.ids import new_id
from workflows.model import EventStatus, Project
from workflows.settings import Settings
from workflows.store.models import Event, utcnow

BACKLOG = 20_000


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    """A port for a redis-server of this test's own, started when the test says so."""
    port = free_port()
    servers: list[subprocess.Popen[bytes]] = []
    yield port, servers
    for server in servers:
        server.terminate()
        server.wait(10)


def _start_redis(port: int, servers: list[subprocess.Popen[bytes]], cwd: Path) -> redis.Redis:
    servers.append(
        subprocess.Popen(
            ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=cwd,
        )
    )
    client = redis.Redis(port=port)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    wait_for(answers, timeout=10, what="the private redis-server")
    return client


def test_a_backlog_of_20000_events_accepted_during_an_outage_is_dispatched_within_60s(
    pg_url: str,
    clean_db: Engine,
    engine_project: Project,
    private_redis: tuple[int, list[subprocess.Popen[bytes]]],
    tmp_path: Path,
) -> None:
    port, servers = private_redis
    prefix = f"outage{new_id('q')[-8:]}"
    settings = Settings(
        project_dir=ENGINE_DIR,
        database_url=pg_url,
        broker_url=f"redis://127.0.0.1:{port}/0",
        queue_prefix=prefix,
    )
    rt = sweep.sweep_runtime(settings, engine_project)
    # what the API left behind during a ten-minute outage that ended a minute ago
    start = utcnow() - timedelta(minutes=11)
    workflow = engine_project.workflows["chain"]
    rows = [
        {
            "id": new_id("evt"),
            "name": "engine.chain",
            "payload": {"value": n},
            "status": EventStatus.ACCEPTED.value,
            "routes": [
                {
                    "workflow_id": workflow.id,
                    "version": workflow.version,
                    "execution_id": new_id("exe"),
                }
            ],
            "token_name": "test",
            "publish_count": 0,
            "received_at": start + timedelta(milliseconds=30 * n),
        }
        for n in range(BACKLOG)
    ]
    with rt.sessions.begin() as session:
        session.execute(insert(Event), rows)
    try:
        # the broker is still down: a pass publishes nothing and leaves every count at 0
        down = sweep.sweep(rt)
        assert 0 < len(down.events) < BACKLOG  # one pass, then the chain stopped
        with rt.sessions() as session:
            counted = session.scalar(select(func.max(Event.publish_count)))
        assert counted == 0

        client = _start_redis(port, servers, tmp_path)
        queue = f"{prefix}.dispatch"
        sweeper = sweep.Sweeper(rt, interval=0.5)
        sweeper.start()
        try:
            wait_for(
                lambda: client.llen(queue) >= BACKLOG,
                timeout=60,
                what=f"{BACKLOG} dispatch messages on the broker",
            )
        finally:
            sweeper.stop()
        published = [
            json.loads(base64.b64decode(json.loads(raw)["body"]))[0][0]
            for raw in client.lrange(queue, 0, -1)
        ]
        assert sorted(published) == sorted(row["id"] for row in rows)  # each exactly once
    finally:
        rt.close()
