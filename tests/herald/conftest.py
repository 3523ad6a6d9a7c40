"""Fixtures for the tests of the `herald` command: the API fixtures of tests/app, and its env."""

from __future__ import annotations

from pathlib import Path

from tests.app.conftest import api_settings, app, make_app

__all__ = ["api_settings", "app", "command_env", "make_app"]


def command_env(project: Path, database: str) -> dict[str, str]:
    """HERALD_* variables for a command on ``project`` and ``database``, in-process broker."""
    return {
        "HERALD_PROJECT_DIR": str(project),
        "HERALD_DATABASE_URL": database,
        "HERALD_BROKER_URL": "memory://",
    }
