"""run_agent's own rules (actions, input schema, forced provider) and check_providers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agents.conftest import TEST_KEY, TEST_KEY_ENV, AgentFactory
from tests.agents.fake_openai import FakeOpenAI
from workers.agents import check_providers, run_agent
from workers.agents.providers import UnknownProvider
from workflows.errors import InvalidStepIO
from workflows.model import Agent, Location, ModelConfig, Project, Task, Workflow


def test_forcing_mock_never_calls_the_endpoint(
    fake_openai: FakeOpenAI, make_agent: AgentFactory
) -> None:
    agent = make_agent()

    result = run_agent(
        agent,
        "default",
        {"task": "hi"},
        idempotency_key="k",
        timeout=5,
        environ={"HERALD_AGENT_PROVIDER": "mock"},
    )

    assert result.usage["provider"] == "mock"
    assert "hi" in result.output["text"]
    assert fake_openai.requests == []


def test_input_that_does_not_fit_is_refused_before_any_call(
    fake_openai: FakeOpenAI, make_agent: AgentFactory, key_env: dict[str, str]
) -> None:
    schema = {
        "type": "object",
        "properties": {"orderId": {"type": "string"}},
        "required": ["orderId"],
    }
    agent = make_agent(action="validate", input_schema=schema)

    with pytest.raises(InvalidStepIO) as caught:
        run_agent(agent, "validate", {"order": 1}, idempotency_key="k", timeout=5, environ=key_env)

    assert 'the input does not fit: at /: "orderId" is a required property' in (
        caught.value.message
    )
    assert fake_openai.requests == []


def test_unknown_action_lists_the_known_ones(make_agent: AgentFactory) -> None:
    agent = make_agent(action="validate")

    with pytest.raises(InvalidStepIO) as caught:
        run_agent(agent, "summarise", {}, idempotency_key="k", timeout=5, environ={})

    assert caught.value.message == (
        "agent 'order-processor' has no action 'summarise' (actions: default, validate)"
    )


def test_unknown_provider_fails_without_retry(make_agent: AgentFactory) -> None:
    agent = make_agent(provider="anthropic")

    with pytest.raises(UnknownProvider) as caught:
        run_agent(agent, "default", {}, idempotency_key="k", timeout=5, environ={})

    assert "unknown agent provider 'anthropic' (known: mock, openai)" in caught.value.message
    assert caught.value.retryable is False


def _project(*agents: Agent) -> Project:
    tasks = tuple(Task(id=f"t{i}", uses="agent", agent=a) for i, a in enumerate(agents))
    workflow = Workflow(id="flow", tasks=tasks)
    return Project(root=Path("."), workflows={"flow": workflow})


def _agent(agent_id: str, provider: str, key_env: str | None = TEST_KEY_ENV) -> Agent:
    config = ModelConfig(
        id=f"{agent_id}-model", provider=provider, model="gpt-4o", api_key_env=key_env
    )
    return Agent(id=agent_id, config=config, location=Location("flow.yaml", 7))


def test_check_providers_reports_openai_agents_without_a_key() -> None:
    project = _project(_agent("writer", "openai"), _agent("offline", "mock"))

    (line,) = check_providers(project, environ={})

    assert line.startswith("agent 'writer' (flow.yaml:7), model 'writer-model': ")
    assert f"${TEST_KEY_ENV}" in line
    assert "HERALD_AGENT_PROVIDER=mock" in line


def test_check_providers_is_quiet_when_every_agent_can_work() -> None:
    project = _project(_agent("writer", "openai"), _agent("offline", "mock"))

    assert check_providers(project, environ={TEST_KEY_ENV: TEST_KEY}) == []


def test_default_key_variable_is_openai_api_key() -> None:
    (line,) = check_providers(_project(_agent("writer", "openai", key_env=None)), environ={})

    assert "$OPENAI_API_KEY" in line


def test_forced_mock_is_reported_for_every_agent_it_moves() -> None:
    project = _project(_agent("writer", "openai"), _agent("offline", "mock"))

    lines = check_providers(project, environ={"HERALD_AGENT_PROVIDER": "mock"})

    assert lines == [
        "agent 'writer' (flow.yaml:7), model 'writer-model': HERALD_AGENT_PROVIDER=mock: "
        "runs on the mock provider instead of openai model 'gpt-4o'"
    ]


def test_forcing_an_unknown_provider_is_reported() -> None:
    lines = check_providers(_project(_agent("w", "openai")), {"HERALD_AGENT_PROVIDER": "nope"})

    assert lines == [
        "HERALD_AGENT_PROVIDER=nope names no provider (known: mock, openai); every agent fails"
    ]


def test_check_providers_never_shows_a_key_value() -> None:
    lines = check_providers(
        _project(_agent("writer", "openai", key_env="OTHER_KEY")), {TEST_KEY_ENV: TEST_KEY}
    )

    assert len(lines) == 1
    assert TEST_KEY not in lines[0]


def test_forcing_openai_checks_the_key_of_every_agent_it_moves() -> None:
    lines = check_providers(
        _project(_agent("offline", "mock")), {"HERALD_AGENT_PROVIDER": "openai"}
    )

    assert len(lines) == 2
    assert "runs on the openai provider instead of mock model 'gpt-4o'" in lines[0]
    assert f"${TEST_KEY_ENV}, which is not set" in lines[1]
