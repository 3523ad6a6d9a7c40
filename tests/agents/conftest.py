"""Fixtures for agent tests: a local Chat Completions server and agents pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from tests.agents.fake_openai import FakeOpenAI
from tests.workers.conftest import start_worker, worker_env  # noqa: F401  (real-worker fixtures)
from workflows.model import Agent, AgentAction, ModelConfig

TEST_KEY_ENV = "HERALD_TEST_OPENAI_KEY"
TEST_KEY = "sk-test-0123456789abcdefSECRET"


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A scriptable Chat Completions server on 127.0.0.1, closed after the test."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def key_env() -> dict[str, str]:
    """An environment holding the test API key (the real ``os.environ`` is never used)."""
    return {TEST_KEY_ENV: TEST_KEY}


AgentFactory = Callable[..., Agent]


@pytest.fixture
def make_agent(fake_openai: FakeOpenAI) -> AgentFactory:
    """Build an agent on the fake server: ``make_agent(output_schema=..., timeout=...)``."""

    def build(
        *,
        provider: str = "openai",
        action: str = "default",
        prompt: str = "",
        input_schema: Mapping[str, Any] | None = None,
        output_schema: Mapping[str, Any] | None = None,
        timeout: float | None = 5.0,
        max_retries: int = 2,
        params: Mapping[str, Any] | None = None,
    ) -> Agent:
        config = ModelConfig(
            id="gpt-4o",
            provider=provider,
            model="gpt-4o",
            base_url=fake_openai.base_url,
            api_key_env=TEST_KEY_ENV,
            timeout=timeout,
            max_retries=max_retries,
            params=params or {},
        )
        act = AgentAction(
            id=action, prompt=prompt, input_schema=input_schema, output_schema=output_schema
        )
        return Agent(
            id="order-processor",
            config=config,
            instructions="You are an order processing assistant.",
            actions={action: act},
        )

    return build
