"""Typed settings, built once from ``HERALD_*`` environment variables.

Nothing reads the environment at import time: callers build a :class:`Settings`
with :meth:`Settings.from_env` (or construct one directly in tests) and pass it on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from workflows.errors import ConfigError


@dataclass(frozen=True)
class ApiToken:
    """A bearer token allowed to call the API. ``secret`` is never logged or shown."""

    name: str
    secret: str = field(repr=False)
    #: what the token may do: ``events:write``, ``events:read``, ``executions:write``...
    scopes: frozenset[str] = frozenset({"*"})
    #: fnmatch patterns of the event names this token may send (``order.*``)
    events: tuple[str, ...] = ("*",)


@dataclass(frozen=True)
class Settings:
    """Everything herald's processes are configured with."""

    project_dir: Path = field(default_factory=Path.cwd)
    database_url: str = ""
    broker_url: str = "redis://127.0.0.1:6379/0"
    #: queues are named ``<prefix>.dispatch``, ``<prefix>.steps``, ``<prefix>.agents``
    queue_prefix: str = "herald"
    api_tokens: tuple[ApiToken, ...] = ()
    tokens_file: Path | None = None
    max_body_bytes: int = 1024 * 1024
    #: events one ``POST /api/v1/events/batch`` may carry
    batch_max: int = 1000
    #: the largest batch body accepted (413 above)
    batch_max_bytes: int = 16 * 1024 * 1024
    #: how deeply a payload's objects and arrays may nest (400 deeper)
    max_depth: int = 64
    #: errors a 422 lists per failing workflow (with a count of the rest)
    max_errors: int = 20
    idempotency_ttl_seconds: int = 24 * 3600
    #: seconds a rejection (400/403/409/413/415/422) is kept for audit before it is pruned
    rejection_ttl_seconds: int = 7 * 24 * 3600
    #: requests per second allowed per token; 0 means no limit
    rate_limit_per_second: float = 0.0
    log_level: str = "INFO"
    #: how often the recovery sweep runs, and how long work may wait before it is re-published
    sweep_interval_seconds: float = 10.0
    dispatch_deadline_seconds: float = 30.0
    step_deadline_seconds: float = 60.0
    #: how many times a step may lose its worker before it fails
    redelivery_cap: int = 3
    #: seconds between two heartbeats of a worker in the ``workers`` table
    heartbeat_interval_seconds: float = 5.0
    #: seconds without a heartbeat after which a worker is presumed dead (its steps requeued)
    worker_dead_after_seconds: float = 15.0
    #: seconds a worker told to stop (SIGTERM) lets running steps finish before handing them back
    shutdown_grace_seconds: float = 25.0
    #: the least Redis visibility timeout; raised to what the project's longest step needs
    visibility_timeout_seconds: float = 3600.0

    def __post_init__(self) -> None:
        for name, variable in (
            ("max_depth", "HERALD_MAX_DEPTH"),
            ("max_errors", "HERALD_MAX_ERRORS"),
            ("batch_max", "HERALD_BATCH_MAX"),
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{variable} must be at least 1, got {getattr(self, name)}")
        if not self.database_url:
            default = f"sqlite:///{self.project_dir / '.herald' / 'herald.db'}"
            object.__setattr__(self, "database_url", default)
        if self.heartbeat_interval_seconds <= 0:
            raise ConfigError("HERALD_HEARTBEAT_INTERVAL must be more than 0 seconds")
        if self.worker_dead_after_seconds < 2 * self.heartbeat_interval_seconds:
            raise ConfigError(
                "HERALD_WORKER_DEAD_AFTER must be at least twice HERALD_HEARTBEAT_INTERVAL "
                f"({self.worker_dead_after_seconds:g} s < 2 x "
                f"{self.heartbeat_interval_seconds:g} s): a worker missing one beat would "
                "be taken for dead"
            )
        if self.shutdown_grace_seconds < 0:
            raise ConfigError("HERALD_SHUTDOWN_GRACE must be 0 seconds or more")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``HERALD_*`` variables; ``overrides`` win over the environment."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if "HERALD_PROJECT_DIR" in env:
            values["project_dir"] = Path(env["HERALD_PROJECT_DIR"]).resolve()
        _str(env, values, "HERALD_DATABASE_URL", "database_url")
        _str(env, values, "HERALD_BROKER_URL", "broker_url")
        _str(env, values, "HERALD_LOG_LEVEL", "log_level")
        _str(env, values, "HERALD_QUEUE_PREFIX", "queue_prefix")
        if env.get("HERALD_API_TOKENS"):
            values["api_tokens"] = parse_tokens(env["HERALD_API_TOKENS"])
        if env.get("HERALD_TOKENS_FILE"):
            values["tokens_file"] = Path(env["HERALD_TOKENS_FILE"])
        _num(env, values, "HERALD_MAX_BODY_BYTES", "max_body_bytes", int)
        _num(env, values, "HERALD_MAX_DEPTH", "max_depth", int)
        _num(env, values, "HERALD_BATCH_MAX", "batch_max", int)
        _num(env, values, "HERALD_BATCH_MAX_BYTES", "batch_max_bytes", int)
        _num(env, values, "HERALD_MAX_ERRORS", "max_errors", int)
        _num(env, values, "HERALD_IDEMPOTENCY_TTL", "idempotency_ttl_seconds", int)
        _num(env, values, "HERALD_REJECTION_TTL", "rejection_ttl_seconds", int)
        _num(env, values, "HERALD_RATE_LIMIT", "rate_limit_per_second", float)
        _num(env, values, "HERALD_SWEEP_INTERVAL", "sweep_interval_seconds", float)
        _num(env, values, "HERALD_DISPATCH_DEADLINE", "dispatch_deadline_seconds", float)
        _num(env, values, "HERALD_STEP_DEADLINE", "step_deadline_seconds", float)
        _num(env, values, "HERALD_REDELIVERY_CAP", "redelivery_cap", int)
        _num(env, values, "HERALD_HEARTBEAT_INTERVAL", "heartbeat_interval_seconds", float)
        _num(env, values, "HERALD_WORKER_DEAD_AFTER", "worker_dead_after_seconds", float)
        _num(env, values, "HERALD_SHUTDOWN_GRACE", "shutdown_grace_seconds", float)
        _num(env, values, "HERALD_VISIBILITY_TIMEOUT", "visibility_timeout_seconds", float)
        values.update(overrides)
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return replace(self, **changes)


def parse_tokens(raw: str) -> tuple[ApiToken, ...]:
    """Parse ``name:token,name2:token2``; a malformed entry is a :class:`ConfigError`."""
    tokens = []
    for position, entry in enumerate(filter(None, (e.strip() for e in raw.split(","))), 1):
        name, sep, secret = entry.partition(":")
        if not sep or not name.strip() or not secret.strip():
            raise ConfigError(f"HERALD_API_TOKENS entry {position} is not of the form name:token")
        tokens.append(ApiToken(name=name.strip(), secret=secret.strip()))
    return tuple(tokens)


def _str(env: Mapping[str, str], values: dict[str, Any], var: str, key: str) -> None:
    if env.get(var):
        values[key] = env[var]


def _num(
    env: Mapping[str, str], values: dict[str, Any], var: str, key: str, kind: type[int | float]
) -> None:
    if not env.get(var):
        return
    try:
        values[key] = kind(env[var])
    except ValueError:
        raise ConfigError(f"{var} must be a number, got {env[var]!r}") from None
