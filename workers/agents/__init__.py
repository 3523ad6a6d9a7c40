"""Agent steps: run one action of an LLM agent on a step's input, through its provider.

:func:`run_agent` is what the engine calls for a task whose ``$use`` is an agent
(on the agents queue). It checks the input against the action's input schema,
builds the messages (:mod:`workers.agents.prompt`), asks the provider
(:mod:`workers.agents.providers`), and checks the answer against the action's
output schema. :func:`check_providers` runs once at worker start and says which
agents cannot work (an ``openai`` model with no API key...), so that the worker
can log it loudly instead of failing quietly later.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from workers.agents import providers
from workers.agents.prompt import build_messages
from workers.agents.providers import FORCE_ENV, UnknownProvider
from workers.agents.providers.base import CompletionRequest
from workers.agents.validation import check_input, parse_output, thaw
from workflows.errors import InvalidStepIO, StepFailed
from workflows.model import JSON, Agent, AgentAction, Project

__all__ = ["AgentResult", "check_providers", "run_agent"]

DEFAULT_ACTION = "default"


@dataclass(frozen=True)
class AgentResult:
    """What an agent step produced, and what it cost."""

    #: the structured output (dict), or ``{"text": ...}`` when the action has no output schema
    output: JSON
    #: provider, model, prompt_tokens, completion_tokens, total_tokens, latency_ms, attempts
    usage: dict[str, JSON]


def run_agent(
    agent: Agent,
    action_id: str,
    input: JSON,
    *,
    idempotency_key: str,
    timeout: float,
    environ: Mapping[str, str] | None = None,
) -> AgentResult:
    """Run ``action_id`` of ``agent`` on ``input``, within ``timeout`` seconds.

    Raises :class:`~workflows.errors.AgentError` when the provider fails after
    its own retries (retryable, unless retrying cannot help: a missing API key,
    an unknown provider), and :class:`~workflows.errors.InvalidStepIO` when the
    input does not fit the action's input schema or the answer does not fit its
    output schema (or is not JSON). Neither carries an API key.
    """
    env = os.environ if environ is None else environ
    action = find_action(agent, action_id)
    data = thaw(input)
    if action.input_schema is not None:
        check_input(agent.id, action.id, thaw(action.input_schema), data)
    output_schema = thaw(action.output_schema) if action.output_schema is not None else None
    provider = providers.resolve(agent.config, env)
    request = CompletionRequest(
        agent_id=agent.id,
        action_id=action.id,
        config=agent.config,
        messages=build_messages(agent, action, data, output_schema),
        input=data,
        output_schema=output_schema,
        idempotency_key=idempotency_key,
        timeout=max(timeout, 0.001),
        environ=env,
    )
    started = time.monotonic()
    try:
        completion = provider.complete(request)
    except StepFailed as exc:
        exc.details.setdefault("provider", provider.name)
        exc.details["latency_ms"] = _ms_since(started)
        raise
    usage: dict[str, JSON] = {
        "provider": provider.name,
        "model": completion.model,
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
        "latency_ms": _ms_since(started),
        "attempts": completion.attempts,
    }
    if output_schema is None:
        output = completion.data if isinstance(completion.data, dict) else None
        return AgentResult(output=output or {"text": completion.content}, usage=usage)
    try:
        output = parse_output(
            agent.id, action.id, output_schema, completion.data, completion.content
        )
    except InvalidStepIO as exc:
        exc.details["usage"] = usage  # the tokens were spent all the same
        raise
    return AgentResult(output=output, usage=usage)


def find_action(agent: Agent, action_id: str) -> AgentAction:
    """The action ``action_id`` of ``agent``; ``default`` exists even when not declared."""
    action = agent.actions.get(action_id)
    if action is not None:
        return action
    if action_id == DEFAULT_ACTION:
        return AgentAction(id=DEFAULT_ACTION)
    known = ", ".join(sorted({DEFAULT_ACTION, *agent.actions})) or DEFAULT_ACTION
    raise InvalidStepIO(
        f"agent {agent.id!r} has no action {action_id!r} (actions: {known})",
        details={"agent": agent.id, "action": action_id, "where": "action"},
    )


def check_providers(project: Project, environ: Mapping[str, str] | None = None) -> list[str]:
    """One line per agent whose provider cannot work as configured, for the worker to log.

    An ``openai`` agent whose API key variable is unset, an unknown provider, and,
    when ``HERALD_AGENT_PROVIDER`` forces one provider, every agent it moves off
    its configured provider (so that running on mock is never silent) and any
    agent the forced provider cannot serve.
    """
    env = os.environ if environ is None else environ
    forced = providers.forced(env)
    lines: list[str] = []
    if forced is not None and forced not in providers.names():
        known = ", ".join(providers.names())
        return [f"{FORCE_ENV}={forced} names no provider (known: {known}); every agent fails"]
    for where, agent in _agents(project):
        config = agent.config
        label = f"agent {agent.id!r} ({where}), model {config.id!r}"
        if forced is not None and forced != config.provider:
            lines.append(
                f"{label}: {FORCE_ENV}={forced}: runs on the {forced} provider "
                f"instead of {config.provider} model {config.model!r}"
            )
        try:
            problem = providers.resolve(config, env).problem(config, env)
        except UnknownProvider as exc:
            problem = exc.message
        if problem is not None:
            lines.append(
                f"{label}: {problem}; its steps will fail "
                f"(set {FORCE_ENV}=mock to run every agent on the offline mock provider)"
            )
    return lines


def _agents(project: Project) -> Iterator[tuple[str, Agent]]:
    """Every agent of the project once: the shared ones, then those only tasks reach."""
    seen: set[tuple[str, str, str]] = set()
    candidates: list[tuple[str, Agent]] = [("herald.yaml", a) for a in project.agents.values()]
    for workflow in project.workflows.values():
        for task in workflow.tasks:
            if task.agent is not None:
                candidates.append((f"workflow {workflow.id!r}", task.agent))
    for default_where, agent in candidates:
        key = (agent.id, str(agent.location), agent.config.id)
        if key in seen:
            continue
        seen.add(key)
        yield (str(agent.location) if agent.location else default_where), agent


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
