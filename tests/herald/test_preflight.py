"""The pre-flight of `herald serve`, `worker`, `sweep` and `dev`: schema first, then definitions."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from herald.cli import cli
from herald.preflight import preflight
from tests.app.conftest import closed_port
from tests.herald.conftest import command_env
from workflows.errors import DatabaseUnavailable, DefinitionError, SchemaNotMigrated
from workflows.settings import Settings
from workflows.store import db

BROKEN = "id: broken\ntasks:\n  - id: a\n    type: fancy\n"


def settings_for(project: Path, database: str) -> Settings:
    return Settings(project_dir=project, database_url=database, broker_url="memory://")


def test_a_migrated_database_and_loading_definitions_pass(tmp_path: Path, seed_dir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    db.upgrade(url)
    definitions = preflight(settings_for(seed_dir, url))
    assert "order-processor" in definitions.project.workflows
    assert definitions.registry.names()


def test_an_unmigrated_database_is_refused_before_the_definitions(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text(BROKEN)
    with pytest.raises(SchemaNotMigrated, match="herald db upgrade"):
        preflight(settings_for(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}"))


def test_an_unreachable_database_is_refused(seed_dir: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{closed_port()}/x"
    with pytest.raises(DatabaseUnavailable, match="cannot reach the database"):
        preflight(settings_for(seed_dir, url))


def test_invalid_definitions_are_refused_with_every_problem(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    db.upgrade(url)
    (tmp_path / "broken.yaml").write_text(BROKEN)
    with pytest.raises(DefinitionError) as refused:
        preflight(settings_for(tmp_path, url))
    assert any(str(p).startswith("broken.yaml:4") for p in refused.value.problems)


def test_without_the_schema_check_only_the_definitions_are_loaded(
    tmp_path: Path, seed_dir: Path
) -> None:
    missing = tmp_path / "never" / "created.db"
    definitions = preflight(settings_for(seed_dir, f"sqlite:///{missing}"), schema=False)
    assert definitions.project.workflows
    assert not missing.parent.exists()


@pytest.mark.parametrize("command", ["serve", "worker", "sweep"])
def test_every_command_refuses_an_unmigrated_database_with_the_fix(
    tmp_path: Path, seed_dir: Path, command: str
) -> None:
    env = command_env(seed_dir, f"sqlite:///{tmp_path / 'empty.db'}")
    result = CliRunner().invoke(cli, [command], env=env)
    assert result.exit_code == 1
    assert "has no herald schema" in result.output and "herald db upgrade" in result.output
