"""`herald serve`: refuses a bad start with a clear message; serves the API under gunicorn."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from herald.cli import cli
from tests.app.conftest import closed_port, order
from tests.support import start_serve


def env_for(seed_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    """HERALD_* variables for a server on ``database_url``."""
    return {
        "HERALD_PROJECT_DIR": str(seed_dir),
        "HERALD_DATABASE_URL": database_url,
        "HERALD_API_TOKENS": "test:test-token",
        **extra,
    }


def test_refuses_an_unmigrated_database(tmp_path: Path, seed_dir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = CliRunner().invoke(cli, ["serve"], env=env_for(seed_dir, url))
    assert result.exit_code == 1
    assert "herald db upgrade" in result.output
    assert "Traceback" not in result.output


def test_refuses_an_unreachable_database(seed_dir: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{closed_port()}/x"
    result = CliRunner().invoke(cli, ["serve"], env=env_for(seed_dir, url))
    assert result.exit_code == 1
    assert "cannot reach the database" in result.output


def test_refuses_invalid_definitions_printing_every_problem(tmp_path: Path, pg_url: str) -> None:
    (tmp_path / "a.yaml").write_text("id: a\ntriggers: nope\ntasks: []\n")
    (tmp_path / "b.yaml").write_text("id: b\ntasks: 5\n")
    result = CliRunner().invoke(cli, ["serve"], env=env_for(tmp_path, pg_url))
    assert result.exit_code == 1
    assert "a.yaml" in result.output and "b.yaml" in result.output
    assert "refusing to start" in result.output


@pytest.fixture
def server(
    seed_dir: Path,
    pg_url: str,
    redis_url: str,
    queue_prefix: str,
    clean_db: Engine,
    tmp_path: Path,
) -> Iterator[str]:
    """`herald serve` as a real process on a free port; stopped after the test."""
    env = {
        **os.environ,
        **env_for(seed_dir, pg_url),
        "HERALD_BROKER_URL": redis_url,
        "HERALD_QUEUE_PREFIX": queue_prefix,
    }
    process, url = start_serve(env, tmp_path / "serve.log")
    yield url
    process.terminate()
    process.wait(timeout=15)


def test_serves_the_api_and_send_talks_to_it(server: str, tmp_path: Path) -> None:
    payload = tmp_path / "order.json"
    payload.write_text(json.dumps(order()))
    runner = CliRunner()

    sent = runner.invoke(
        cli,
        ["send", "order.created", f"@{payload}", "--url", server, "--id", "o-1"],
        env={"HERALD_TOKEN": "test-token"},
    )
    refused = runner.invoke(
        cli,
        ["send", "order.created", '{"orderId": "o_2"}', "--url", server, "--token", "test-token"],
    )

    assert sent.exit_code == 0, sent.output
    assert "HTTP 202" in sent.output
    answer = json.loads(sent.stdout.split("\n", 1)[1])
    assert answer["data"]["duplicate"] is False and len(answer["data"]["workflows"]) == 4
    assert refused.exit_code == 1
    assert "HTTP 422" in refused.output and "customerId" in refused.output
