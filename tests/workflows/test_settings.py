"""Settings from HERALD_* variables: the bounds on hostile input, the rejections' TTL, the fleet."""

from __future__ import annotations

import pytest

from workflows.errors import ConfigError
from workflows.settings import Settings


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert (settings.max_depth, settings.max_errors) == (64, 20)
    assert settings.rejection_ttl_seconds == 7 * 24 * 3600


def test_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {"HERALD_MAX_DEPTH": "8", "HERALD_MAX_ERRORS": "5", "HERALD_REJECTION_TTL": "3600"}
    )
    assert (settings.max_depth, settings.max_errors, settings.rejection_ttl_seconds) == (8, 5, 3600)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("HERALD_MAX_DEPTH", "0", "HERALD_MAX_DEPTH must be at least 1"),
        ("HERALD_MAX_ERRORS", "0", "HERALD_MAX_ERRORS must be at least 1"),
        ("HERALD_REJECTION_TTL", "a week", "HERALD_REJECTION_TTL must be a number"),
    ],
)
def test_bad_values_are_refused_by_name(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({variable: value})


def test_the_fleet_settings_have_their_documented_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.heartbeat_interval_seconds == 5.0
    assert settings.worker_dead_after_seconds == 15.0
    assert settings.shutdown_grace_seconds == 25.0
    assert settings.visibility_timeout_seconds == 3600.0


def test_the_fleet_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "HERALD_HEARTBEAT_INTERVAL": "1",
            "HERALD_WORKER_DEAD_AFTER": "5",
            "HERALD_SHUTDOWN_GRACE": "0",
            "HERALD_VISIBILITY_TIMEOUT": "7200",
        }
    )
    assert (
        settings.heartbeat_interval_seconds,
        settings.worker_dead_after_seconds,
        settings.shutdown_grace_seconds,
        settings.visibility_timeout_seconds,
    ) == (1.0, 5.0, 0.0, 7200.0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HERALD_WORKER_DEAD_AFTER": "soon"}, "HERALD_WORKER_DEAD_AFTER must be a number"),
        ({"HERALD_HEARTBEAT_INTERVAL": "0"}, "HERALD_HEARTBEAT_INTERVAL must be more than 0"),
        (
            {"HERALD_HEARTBEAT_INTERVAL": "10", "HERALD_WORKER_DEAD_AFTER": "15"},
            "at least twice HERALD_HEARTBEAT_INTERVAL",
        ),
        ({"HERALD_SHUTDOWN_GRACE": "-1"}, "HERALD_SHUTDOWN_GRACE must be 0 seconds or more"),
    ],
)
def test_a_fleet_setting_that_cannot_work_is_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)
