"""create_app: settings order, a bad project refused at start, swapping definitions whole."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from app import create_app
from app.state import HeraldState
from tests.app.conftest import AUTH
from workflows.errors import DefinitionError
from workflows.registry import Definitions


def test_environment_then_override(
    monkeypatch: pytest.MonkeyPatch, seed_dir: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("HERALD_QUEUE_PREFIX", "from-env")
    monkeypatch.setenv("HERALD_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("HERALD_API_TOKENS", "ci:ci-secret")

    app = create_app(
        {
            "project_dir": seed_dir,
            "database_url": f"sqlite:///{tmp_path}/h.db",
            "max_body_bytes": 4096,
        }
    )

    settings = app.extensions["herald"].settings
    assert settings.queue_prefix == "from-env"  # environment over defaults
    assert settings.max_body_bytes == 4096  # override over environment
    assert [t.name for t in settings.api_tokens] == ["ci"]
    app.extensions["herald"].engine.dispose()


def test_unknown_override_is_refused(seed_dir: Path) -> None:
    with pytest.raises(TypeError, match=r"unknown setting.*colour"):
        create_app({"project_dir": seed_dir, "colour": "red"})


def test_invalid_definitions_fail_at_start(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("id: broken\ntriggers: nope\ntasks: []\n")
    with pytest.raises(DefinitionError) as caught:
        create_app({"project_dir": tmp_path, "database_url": f"sqlite:///{tmp_path}/h.db"})
    assert "broken.yaml" in str(caught.value)


def test_definitions_swap_whole(
    make_app: Callable[..., Flask], tmp_path: Path, seed_dir: Path
) -> None:
    app = make_app()
    client = app.test_client()
    project = shutil.copytree(seed_dir, tmp_path / "project")
    for path in project.glob("*.yaml"):  # keep only the fan-out example
        if path.name not in ("fan-out.yaml", "herald.yaml"):
            path.unlink()
    state: HeraldState = app.extensions["herald"]

    state.definitions = Definitions.load(project)
    response = client.post("/api/v1/events", json={"name": "order.created"}, headers=AUTH)

    assert response.status_code == 202
    assert {w["workflow_id"] for w in response.get_json()["data"]["workflows"]} == {
        "notification-sender",
        "inventory-updater",
    }
