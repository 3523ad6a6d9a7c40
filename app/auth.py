"""Bearer-token authentication: who is calling, what they may do, which events they may send.

Tokens come from ``HERALD_API_TOKENS`` (``name:token``, every scope) and from an
optional tokens file (``HERALD_TOKENS_FILE``, YAML or JSON): a list of
``{name, token | token_env, scopes, events}``; an entry without ``scopes`` may
only send events (``events:write``). A presented token is compared with every
configured token in constant time (no early exit), so timing tells nothing about
which token came close. Secrets never appear in logs or answers.

A token reads and acts on the events it sent and the executions they started,
and nothing else, unless it holds ``events:read:all`` / ``executions:read:all``
(or ``*``); its event-name patterns limit what it reads as they limit what it
sends (:func:`visibility`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from app.errors import Forbidden, Unauthorized
from workflows.errors import ConfigError
from workflows.settings import ApiToken
from workflows.store.visibility import Visibility

#: every scope a token may hold; ``*`` holds them all
SCOPES = frozenset(
    {
        "events:write",
        "events:read",
        "events:read:all",
        "events:replay",
        "workflows:read",
        "executions:read",
        "executions:read:all",
        "executions:write",
        "workers:read",
        "metrics:read",
        "*",
    }
)
#: what a tokens-file entry without ``scopes`` may do: send events, nothing more
DEFAULT_FILE_SCOPES = ["events:write"]
#: an event-name pattern: the characters of a name, and the wildcards ``*`` and ``?``
PATTERN = re.compile(r"[A-Za-z0-9_.*?-]+")
#: the longest token name (it is recorded on every event)
MAX_TOKEN_NAME = 100
_FILE_KEYS = frozenset({"name", "token", "token_env", "scopes", "events"})


def _digest(secret: str) -> bytes:
    """A fixed-length digest, so that comparisons take the same time for any length."""
    return hashlib.sha256(secret.encode("utf-8")).digest()


@dataclass(frozen=True)
class Tokens:
    """The configured tokens, with their secrets kept only as digests."""

    entries: tuple[tuple[bytes, ApiToken], ...]

    @classmethod
    def of(cls, tokens: Iterable[ApiToken]) -> Tokens:
        """Tokens from :class:`ApiToken` values; a name used twice is a :class:`ConfigError`."""
        seen: set[str] = set()
        entries = []
        for token in tokens:
            if len(token.name) > MAX_TOKEN_NAME:
                raise ConfigError(
                    f"API token name {token.name[:20]!r}... is longer than "
                    f"{MAX_TOKEN_NAME} characters"
                )
            if token.name in seen:
                raise ConfigError(f"API token name {token.name!r} is configured twice")
            seen.add(token.name)
            entries.append((_digest(token.secret), token))
        return cls(tuple(entries))

    def authenticate(self, authorization: str | None) -> ApiToken:
        """The token an ``Authorization`` header carries; :class:`Unauthorized` if none."""
        scheme, _, presented = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise Unauthorized("missing bearer token: send `Authorization: Bearer <token>`")
        digest = _digest(presented.strip())
        found: ApiToken | None = None
        for expected, token in self.entries:  # no early exit: every token is compared
            if hmac.compare_digest(digest, expected):
                found = token
        if found is None:
            raise Unauthorized("invalid bearer token")
        return found

    def named(self, name: str) -> ApiToken | None:
        """The token configured under ``name`` (None if there is none)."""
        return next((token for _, token in self.entries if token.name == name), None)

    def __len__(self) -> int:
        return len(self.entries)


def holds(token: ApiToken, scope: str) -> bool:
    """Whether ``token`` holds ``scope``: itself, ``*``, or its ``:all`` form (``events:read:all``
    holds ``events:read``)."""
    return bool({"*", scope, f"{scope}:all"} & token.scopes)


def require_scope(token: ApiToken, scope: str) -> None:
    """Raise :class:`Forbidden` unless ``token`` holds ``scope`` (see :func:`holds`)."""
    if not holds(token, scope):
        raise Forbidden(
            f"token {token.name!r} lacks the scope {scope!r}",
            details={"required_scope": scope},
        )


def may_send(token: ApiToken, name: str) -> bool:
    """Whether ``token`` may send events named ``name`` (its ``events`` patterns)."""
    return any(fnmatchcase(name, pattern) for pattern in token.events)


def visibility(token: ApiToken, area: str) -> Visibility:
    """What ``token`` may read and act on in ``area`` (``events`` or ``executions``).

    Its own events (and the executions they started) only, unless it holds
    ``<area>:read:all`` or ``*``; in both cases only the names its patterns match.
    """
    return Visibility(
        token_name=token.name,
        every_token=bool({"*", f"{area}:read:all"} & token.scopes),
        names=token.events,
    )


def require_event(token: ApiToken, name: str) -> None:
    """Raise :class:`Forbidden` unless ``token`` may send events named ``name``."""
    if not may_send(token, name):
        raise Forbidden(
            f"token {token.name!r} may not send events named {name!r}",
            details={"field": "name", "allowed": list(token.events)},
        )


def load_tokens(
    api_tokens: Iterable[ApiToken], tokens_file: Path | None, environ: Mapping[str, str] | None
) -> Tokens:
    """Every configured token: ``HERALD_API_TOKENS`` first, then the tokens file."""
    tokens = list(api_tokens)
    if tokens_file is not None:
        tokens.extend(read_tokens_file(tokens_file, os.environ if environ is None else environ))
    return Tokens.of(tokens)


def read_tokens_file(path: Path, environ: Mapping[str, str]) -> list[ApiToken]:
    """Parse a tokens file (YAML or JSON); any problem is a :class:`ConfigError` naming it."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the tokens file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"the tokens file {path} is not valid YAML or JSON: {exc}") from None
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: expected a list of tokens, got {type(raw).__name__}")
    return [_file_token(path, position, entry, environ) for position, entry in enumerate(raw)]


def _file_token(path: Path, position: int, entry: Any, environ: Mapping[str, str]) -> ApiToken:
    where = f"{path}: entry {position}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping with name, token and scopes")
    unknown = sorted(set(entry) - _FILE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: `name` must be a non-empty string")
    secret = _secret(where, entry, environ)
    scopes = _strings(where, entry, "scopes", DEFAULT_FILE_SCOPES)
    bad = sorted(set(scopes) - SCOPES)
    if bad:
        raise ConfigError(f"{where}: unknown scope(s) {', '.join(bad)}; known: {sorted(SCOPES)}")
    events = _strings(where, entry, "events", ["*"])
    odd = [pattern for pattern in events if not PATTERN.fullmatch(pattern)]
    if odd:
        raise ConfigError(
            f"{where}: event-name pattern(s) {', '.join(map(repr, odd))} may use only letters, "
            "digits, `.`, `_`, `-` and the wildcards `*` and `?`"
        )
    return ApiToken(
        name=name.strip(), secret=secret, scopes=frozenset(scopes), events=tuple(events)
    )


def _secret(where: str, entry: dict[str, Any], environ: Mapping[str, str]) -> str:
    if ("token" in entry) == ("token_env" in entry):
        raise ConfigError(f"{where}: give exactly one of `token` and `token_env`")
    if "token" in entry:
        secret = entry["token"]
        if not isinstance(secret, str) or not secret.strip():
            raise ConfigError(f"{where}: `token` must be a non-empty string")
        return secret.strip()
    variable = entry["token_env"]
    if not isinstance(variable, str) or not environ.get(variable, "").strip():
        raise ConfigError(f"{where}: the environment variable named by `token_env` is not set")
    return environ[variable].strip()


def _strings(where: str, entry: dict[str, Any], key: str, default: list[str]) -> list[str]:
    value = entry.get(key, default)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: `{key}` must be a list of strings")
    return value
