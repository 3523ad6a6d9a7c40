"""`herald sweep --once`: one recovery pass, and what it did."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from herald.cli import cli
from tests.herald.conftest import command_env
from tests.workers.conftest import ENGINE_DIR, accept
from workflows.loading.loader import load_project
from workflows.store import db


def test_sweep_once_reports_what_it_did(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    accept(db.make_sessionmaker(engine), load_project(ENGINE_DIR), "engine.fail", {"message": "m"})
    engine.dispose()
    env = {**command_env(ENGINE_DIR, url), "HERALD_DISPATCH_DEADLINE": "0"}
    result = CliRunner().invoke(cli, ["sweep", "--once"], env=env)
    assert result.exit_code == 0, result.output
    assert "swept: 1 event(s), 0 queued, 0 retrying, 0 lost, 0 failed" in result.output
