"""The provider registry: ``openai`` (any Chat Completions endpoint) and ``mock`` (offline).

A model's ``provider`` names its entry here. ``HERALD_AGENT_PROVIDER=mock`` in the
environment puts every agent on the mock provider, whatever its model says; that
is how examples run with no API key, and it is never silent (see
``workers.agents.check_providers``).
"""

from __future__ import annotations

from collections.abc import Mapping

from workers.agents.providers.base import Provider
from workers.agents.providers.mock import MockProvider
from workers.agents.providers.openai import OpenAIProvider
from workflows.errors import AgentError
from workflows.model import ModelConfig

#: the environment variable that forces every agent onto one provider (``mock``)
FORCE_ENV = "HERALD_AGENT_PROVIDER"

_REGISTRY: dict[str, Provider] = {p.name: p for p in (OpenAIProvider(), MockProvider())}


class UnknownProvider(AgentError):
    """A model (or ``HERALD_AGENT_PROVIDER``) names a provider herald does not have."""

    retryable = False


def names() -> tuple[str, ...]:
    """The registered provider names, sorted."""
    return tuple(sorted(_REGISTRY))


def get_provider(name: str) -> Provider:
    """The provider registered as ``name``; :class:`UnknownProvider` if there is none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(names())
        raise UnknownProvider(f"unknown agent provider {name!r} (known: {known})") from None


def forced(environ: Mapping[str, str]) -> str | None:
    """The provider ``HERALD_AGENT_PROVIDER`` forces, or ``None`` when it is unset or empty."""
    value = environ.get(FORCE_ENV, "").strip()
    return value or None


def resolve(config: ModelConfig, environ: Mapping[str, str]) -> Provider:
    """The provider that serves ``config``: the forced one if any, else the model's own."""
    name = forced(environ)
    if name is not None:
        try:
            return get_provider(name)
        except UnknownProvider as exc:
            raise UnknownProvider(f"{FORCE_ENV}: {exc.message}") from None
    return get_provider(config.provider)
