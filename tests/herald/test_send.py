"""`herald send`: payload sources, token defaults and failures, against a served app."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import Engine
from werkzeug.serving import make_server

from herald.cli import cli
from herald.send import default_token
from tests.app.conftest import closed_port, count_events


@pytest.fixture
def base_url(app: Flask) -> Iterator[str]:
    """The app served over HTTP in a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.mark.parametrize(
    ("environ", "token"),
    [
        ({"HERALD_TOKEN": "t1", "HERALD_API_TOKENS": "a:t2"}, "t1"),
        ({"HERALD_API_TOKENS": "a:t2,b:t3"}, "t2"),
        ({}, None),
    ],
)
def test_default_token(environ: dict[str, str], token: str | None) -> None:
    assert default_token(environ) == token


def test_send_from_stdin_with_api_tokens(base_url: str, clean_db: Engine) -> None:
    result = CliRunner().invoke(
        cli,
        ["send", "nobody.listens", "@-", "--url", base_url],
        input='{"x": 1}',
        env={"HERALD_TOKEN": "", "HERALD_API_TOKENS": "test:test-token"},
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.split("\n", 1)[1])["data"]["workflows"] == []


def test_refusal_exits_1_and_prints_the_error(base_url: str, clean_db: Engine) -> None:
    result = CliRunner().invoke(
        cli, ["send", "a.b", "--url", base_url, "--token", "wrong"], env={"HERALD_TOKEN": ""}
    )
    assert result.exit_code == 1
    assert "HTTP 401" in result.output and "unauthorized" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a.b", "{not json"], "not valid JSON"),
        (["a.b", "@/nonexistent/file.json"], "cannot read"),
    ],
)
def test_bad_payload_argument(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["send", *args, "--url", "http://127.0.0.1:1"])
    assert result.exit_code == 2
    assert message in result.output


def test_unreachable_api(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = CliRunner().invoke(cli, ["send", "a.b", "--url", url, "--token", "x"])
    assert result.exit_code == 1
    assert f"cannot reach the herald API at {url}" in result.output


def test_send_batch_posts_a_jsonl_file_in_chunks_and_exits_1_on_a_refused_entry(
    base_url: str, clean_db: Engine, tmp_path: Path
) -> None:
    lines = [json.dumps({"name": "nobody.listens", "payload": {"n": n}}) for n in range(5)]
    good = tmp_path / "events.jsonl"
    good.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    env = {"HERALD_TOKEN": "test-token"}
    result = CliRunner().invoke(
        cli, ["send", "--batch", str(good), "--batch-size", "2", "--url", base_url], env=env
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("HTTP 207") == 3  # 2 + 2 + 1
    assert count_events(clean_db) == 5

    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines[0] + '\n{"name": "no"}\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["send", "--batch", str(bad), "--url", base_url], env=env)
    assert result.exit_code == 1
    assert '"accepted": 1' in result.output and '"field": "name"' in result.output

    broken = tmp_path / "broken.jsonl"
    broken.write_text("{\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["send", "--batch", str(broken), "--url", base_url], env=env)
    assert result.exit_code == 2 and "broken.jsonl:1: not valid JSON" in result.output


def test_send_dry_run_stores_nothing(base_url: str, clean_db: Engine) -> None:
    result = CliRunner().invoke(
        cli,
        ["send", "nobody.listens", '{"x": 1}', "--dry-run", "--url", base_url],
        env={"HERALD_TOKEN": "test-token"},
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout.split("\n", 1)[1])
    assert answer["data"]["dry_run"] is True and answer["data"]["workflows"] == []
    assert count_events(clean_db) == 0
