"""What every LLM provider receives and answers: one completion request, one completion.

A provider turns a :class:`CompletionRequest` (the messages built from the agent's
instructions, the action's prompt and the step's input) into a :class:`Completion`
(the model's answer and its token counts). Parsing and validating the answer
against the action's output schema is not the provider's job: ``run_agent`` does it
the same way for every provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from workflows.model import JSON, ModelConfig


@dataclass(frozen=True)
class Message:
    """One chat message: ``system`` or ``user`` and its text."""

    role: str
    content: str

    def as_dict(self) -> dict[str, str]:
        """The Chat Completions wire form."""
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class CompletionRequest:
    """Everything a provider needs for one call."""

    agent_id: str
    action_id: str
    config: ModelConfig
    messages: tuple[Message, ...]
    #: the step's input (already rendered and checked against the input schema)
    input: JSON
    #: the action's output schema, plain dicts and lists; ``None`` means free text
    output_schema: dict[str, JSON] | None
    idempotency_key: str
    #: seconds the whole call may take, retries included
    timeout: float
    environ: Mapping[str, str]


@dataclass(frozen=True)
class Completion:
    """A provider's answer: raw text to parse, or data it already structured (mock)."""

    model: str
    content: str = ""
    #: set by providers that build the answer themselves; ``run_agent`` still validates it
    data: JSON = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: HTTP requests made, the first included
    attempts: int = 1


class Provider(Protocol):
    """An LLM backend, registered under ``name`` (the ``provider`` of a model)."""

    name: str

    def complete(self, request: CompletionRequest) -> Completion:
        """Run one completion; raise ``AgentError`` when the backend fails after its retries."""
        ...

    def problem(self, config: ModelConfig, environ: Mapping[str, str]) -> str | None:
        """Why this provider cannot work with ``config`` in ``environ``, or ``None`` if it can."""
        ...
