"""The chat messages of an agent call: instructions, the action's prompt and the input.

The system message is the agent's ``instructions``; when the action declares an
output schema it also asks for one JSON object that satisfies it (the schema is
sent as ``response_format`` too, but not every compatible endpoint honours that).
The user message is the action's ``prompt`` rendered with the step's input as
``.with`` (and ``.input``), followed by the input itself as JSON.
"""

from __future__ import annotations

import json

from workers.agents.providers.base import Message
from workflows.errors import InvalidStepIO, TemplateError
from workflows.model import JSON, Agent, AgentAction
from workflows.templates import render


def build_messages(
    agent: Agent, action: AgentAction, input: JSON, output_schema: JSON = None
) -> tuple[Message, ...]:
    """The system and user messages for running ``action`` of ``agent`` on ``input``."""
    return (
        Message("system", system_text(agent, output_schema)),
        Message("user", user_text(agent, action, input)),
    )


def system_text(agent: Agent, output_schema: JSON) -> str:
    """The agent's instructions, plus the JSON answer it must give when there is a schema."""
    text = agent.instructions.strip() or f"You are the agent {agent.id!r}."
    if output_schema is not None:
        schema = json.dumps(output_schema, indent=2)
        text += (
            "\n\nAnswer with a single JSON object that satisfies this JSON Schema, "
            f"and nothing else:\n{schema}"
        )
    return text


def user_text(agent: Agent, action: AgentAction, input: JSON) -> str:
    """The rendered prompt (or the input's ``task`` text) followed by the input as JSON."""
    lead = render_prompt(agent, action, input) if action.prompt else ""
    if not lead and isinstance(input, dict) and isinstance(input.get("task"), str):
        lead = input["task"]
    body = f"Input:\n{json.dumps(input, indent=2, default=str)}"
    return f"{lead.strip()}\n\n{body}" if lead.strip() else body


def render_prompt(agent: Agent, action: AgentAction, input: JSON) -> str:
    """``action.prompt`` rendered with ``{"with": input, "input": input}``.

    A template that fails (a missing key...) is an :class:`InvalidStepIO`: the
    step's input does not carry what the prompt needs, and retrying cannot help.
    """
    try:
        rendered = render(action.prompt, {"with": input, "input": input})
    except TemplateError as exc:
        raise InvalidStepIO(
            f"agent {agent.id!r} action {action.id!r}: the prompt cannot be rendered: "
            f"{exc.message}",
            details={"agent": agent.id, "action": action.id, "where": "prompt"},
        ) from None
    return rendered if isinstance(rendered, str) else json.dumps(rendered, default=str)
