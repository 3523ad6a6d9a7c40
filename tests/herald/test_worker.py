"""`herald worker` (and `herald sweep`): they refuse to start on a bad database or project."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from herald.cli import cli
from tests.herald.conftest import command_env
from tests.workers.conftest import ENGINE_DIR
from workflows.store import db


@pytest.mark.parametrize("command", ["worker", "sweep"])
def test_an_unmigrated_database_is_refused_with_the_fix(tmp_path: Path, command: str) -> None:
    env = command_env(ENGINE_DIR, f"sqlite:///{tmp_path / 'empty.db'}")
    result = CliRunner().invoke(cli, [command], env=env)
    assert result.exit_code == 1
    assert "has no herald schema" in result.output and "herald db upgrade" in result.output


def test_invalid_definitions_are_refused_with_every_problem(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    db.upgrade(url)
    project = tmp_path / "project"
    project.mkdir()
    (project / "bad.yaml").write_text(
        'id: bad\ntasks:\n  - id: a\n    $use: tool(local::tools.#(id=="nope"))\n    colour: red\n'
    )
    result = CliRunner().invoke(cli, ["worker"], env=command_env(project, url))
    assert result.exit_code == 1
    assert "bad.yaml:" in result.output and "colour" in result.output and "nope" in result.output


def test_an_unknown_queue_is_a_usage_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    result = CliRunner().invoke(
        cli, ["worker", "--queues", "steps,slow"], env=command_env(ENGINE_DIR, url)
    )
    assert result.exit_code == 2 and "unknown queue(s) slow" in result.output
