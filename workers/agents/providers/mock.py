"""The ``mock`` provider: deterministic, offline, no key, so that examples run anywhere.

With an output schema it answers an instance of that schema built from the schema
itself (see :mod:`workers.agents.providers.sample`), seeded by a hash of the agent,
the action and the input: the same step gets the same answer, another input another
one. Without a schema it answers ``{"text": ..., "action": ..., "agent": ...}``,
the text mentioning the input.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from workers.agents.providers.base import Completion, CompletionRequest
from workers.agents.providers.sample import sample
from workflows.model import JSON, ModelConfig

_MENTION_CHARS = 200


class MockProvider:
    """Answers from the schema or echoes the input; never calls anything."""

    name = "mock"

    def problem(self, config: ModelConfig, environ: Mapping[str, str]) -> str | None:
        """The mock provider always works."""
        return None

    def complete(self, request: CompletionRequest) -> Completion:
        """A deterministic answer for ``request``."""
        data: JSON
        if request.output_schema is not None:
            data = sample(request.output_schema, seed(request))
        else:
            data = {
                "text": (
                    f"[mock {request.config.model}] {request.agent_id}/{request.action_id} "
                    f"handled: {mention(request.input)}"
                ),
                "action": request.action_id,
                "agent": request.agent_id,
            }
        content = json.dumps(data, sort_keys=True)
        prompt = " ".join(m.content for m in request.messages)
        return Completion(
            model=request.config.model,
            content=content,
            data=data,
            prompt_tokens=_tokens(prompt),
            completion_tokens=_tokens(content),
            attempts=1,
        )


def seed(request: CompletionRequest) -> str:
    """A stable hash of what the answer depends on: agent, action and input."""
    body = json.dumps(
        [request.agent_id, request.action_id, request.input], sort_keys=True, default=str
    )
    return hashlib.sha256(body.encode()).hexdigest()


def mention(value: JSON) -> str:
    """A short rendering of the input: its ``task`` text when it has one, else compact JSON."""
    if isinstance(value, dict) and isinstance(value.get("task"), str):
        text: str = value["task"]
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return text if len(text) <= _MENTION_CHARS else text[: _MENTION_CHARS - 3] + "..."


def _tokens(text: str) -> int:
    """A rough token count (about four characters per token), so usage is never all zeros."""
    return max(1, len(text) // 4)
