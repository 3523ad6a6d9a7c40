"""The mock provider through run_agent: offline, deterministic, schema-true."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from workers.agents import run_agent
from workflows.errors import InvalidStepIO
from workflows.model import Agent, AgentAction, ModelConfig

VALIDATION = {
    "type": "object",
    "properties": {
        "valid": {"type": "boolean"},
        "decision": {"enum": ["approve", "reject"]},
        "contact": {"type": "string", "format": "email"},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
    },
    "required": ["valid", "decision", "contact", "score"],
}


def mock_agent(output_schema: Mapping[str, Any] | None = None) -> Agent:
    action = AgentAction(id="validate", output_schema=output_schema)
    return Agent(
        id="order-processor",
        config=ModelConfig(id="gpt-4o", provider="mock", model="gpt-4o"),
        actions={"validate": action},
    )


def test_without_schema_the_answer_mentions_the_input() -> None:
    result = run_agent(
        mock_agent(),
        "default",
        {"task": "Validate order o_1"},
        idempotency_key="k",
        timeout=5,
        environ={},
    )

    assert result.output["agent"] == "order-processor"
    assert result.output["action"] == "default"
    assert "Validate order o_1" in result.output["text"]
    assert result.usage["provider"] == "mock"
    assert result.usage["attempts"] == 1
    assert (
        result.usage["total_tokens"]
        == (result.usage["prompt_tokens"] + result.usage["completion_tokens"])
        > 0
    )


def test_with_schema_the_answer_fits_and_is_stable_per_input() -> None:
    agent = mock_agent(VALIDATION)

    def answer(order: str) -> Any:
        return run_agent(
            agent, "validate", {"orderId": order}, idempotency_key="k", timeout=5, environ={}
        ).output

    first = answer("o_1")
    assert first == answer("o_1")
    assert {"valid", "decision", "contact", "score"} <= set(first)
    assert first["decision"] in ("approve", "reject")
    assert first["contact"].endswith("@example.com")
    assert 1 <= first["score"] <= 5
    assert any(answer(f"o_{n}") != first for n in range(2, 6))


def test_a_schema_the_mock_cannot_satisfy_is_a_clear_error() -> None:
    agent = mock_agent({"type": "string", "pattern": "^ord_[0-9]+$"})

    with pytest.raises(InvalidStepIO) as caught:
        run_agent(agent, "validate", {}, idempotency_key="k", timeout=5, environ={})

    assert 'does not match "^ord_[0-9]+$"' in caught.value.message
