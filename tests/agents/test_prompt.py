"""The messages an agent call sends: instructions, rendered prompt, input, schema request."""

from __future__ import annotations

import json

import pytest

from workers.agents.prompt import build_messages
from workflows.errors import InvalidStepIO
from workflows.model import Agent, AgentAction, ModelConfig

MODEL = ModelConfig(id="m", provider="mock", model="m")
AGENT = Agent(id="order-processor", config=MODEL, instructions="  You process orders.\n")


def test_prompt_is_rendered_with_the_step_input_as_with() -> None:
    action = AgentAction(id="validate", prompt="Validate this order: {{ .with.order_data }}")
    order = {"orderId": "o_1", "items": [{"productId": "p", "quantity": 1}]}

    system, user = build_messages(AGENT, action, {"order_data": order})

    assert system.role == "system"
    assert system.content == "You process orders."
    assert user.role == "user"
    assert user.content.startswith(f"Validate this order: {json.dumps(order)}")
    assert '"orderId": "o_1"' in user.content  # the input follows as JSON


def test_without_a_prompt_the_task_text_leads() -> None:
    _, user = build_messages(AGENT, AgentAction(id="default"), {"task": "Validate order o_1"})

    assert user.content.splitlines()[0] == "Validate order o_1"
    assert "Input:" in user.content


def test_an_output_schema_is_asked_for_in_the_system_message() -> None:
    schema = {"type": "object", "properties": {"valid": {"type": "boolean"}}}

    system, _ = build_messages(AGENT, AgentAction(id="default"), {}, schema)

    assert system.content.startswith("You process orders.")
    assert "single JSON object" in system.content
    assert '"valid"' in system.content


def test_agent_without_instructions_still_gets_a_system_message() -> None:
    bare = Agent(id="helper", config=MODEL)

    system, _ = build_messages(bare, AgentAction(id="default"), {})

    assert system.content == "You are the agent 'helper'."


def test_a_prompt_reading_a_missing_key_is_an_input_error() -> None:
    action = AgentAction(id="validate", prompt="Check {{ .with.order_data }}")

    with pytest.raises(InvalidStepIO) as caught:
        build_messages(AGENT, action, {"other": 1})

    assert "agent 'order-processor' action 'validate': the prompt cannot be rendered" in (
        caught.value.message
    )
    assert "order_data" in caught.value.message
    assert caught.value.details["where"] == "prompt"
