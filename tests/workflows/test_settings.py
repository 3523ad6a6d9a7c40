"""Settings from HERALD_* variables: the bounds on hostile input and the rejections' TTL."""

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
