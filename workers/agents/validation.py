"""Checking an agent step's input and the model's answer against the action's schemas.

Schemas are checked with jsonschema_rs (the draft their ``$schema`` names, 2020-12
by default; :mod:`workers.schemas`: compiled once, regular expressions in linear
time) with ``format`` asserted. A failure is an :class:`InvalidStepIO` whose
message names the agent, the action and the first problem, and whose details list
every problem with its JSON pointer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from workers.schemas import UncompilableSchema, mismatches
from workflows.errors import InvalidStepIO
from workflows.jsonpointer import pointer
from workflows.model import JSON

_MAX_ERRORS = 10
_MAX_MESSAGE = 300
_MAX_ANSWER = 500
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


def thaw(value: Any) -> JSON:
    """Plain dicts and lists from the model's read-only mappings and tuples."""
    if isinstance(value, Mapping):
        return {str(k): thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


def problems(schema: JSON, instance: JSON) -> list[dict[str, str]]:
    """The first ways ``instance`` fails ``schema``: ``{"path": JSON pointer, "message": ...}``."""
    try:
        found, _ = mismatches(schema, instance, limit=_MAX_ERRORS)
    except UncompilableSchema as exc:
        return [{"path": "<schema>", "message": f"the schema itself is invalid: {exc.message}"}]
    return [{"path": pointer(m.path) or "/", "message": _short(m.message)} for m in found]


def check_input(agent_id: str, action_id: str, schema: JSON, input: JSON) -> None:
    """Raise :class:`InvalidStepIO` when the step's input does not fit the action's schema."""
    found = problems(schema, input)
    if found:
        raise _invalid(agent_id, action_id, "input", "the input does not fit", found)


def parse_output(agent_id: str, action_id: str, schema: JSON, data: JSON, content: str) -> JSON:
    """The structured answer: ``data`` if the provider built it, else JSON parsed from ``content``.

    Raises :class:`InvalidStepIO` when the content is not JSON or the value does
    not fit ``schema``; the details carry the (shortened) answer.
    """
    if data is None:
        try:
            data = json_from(content)
        except ValueError as exc:
            found = [{"path": "/", "message": f"not JSON: {exc}"}]
            raise _invalid(
                agent_id, action_id, "output", "the model's answer is not JSON", found, content
            ) from None
    found = problems(schema, data)
    if found:
        raise _invalid(
            agent_id,
            action_id,
            "output",
            "the model's answer does not fit the output schema",
            found,
            content,
        )
    return data


def json_from(content: str) -> JSON:
    """JSON from a model's text: the whole text, a fenced block, or the outermost ``{...}``."""
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError as first:
        start, end = text.find("{"), text.rfind("}")
        if 0 <= start < end:
            try:
                return json.loads(text[start : end + 1])
            except json.JSONDecodeError:
                pass  # report the error about the whole text, which is what the user sees
        raise ValueError(f"{first.msg} at line {first.lineno} column {first.colno}") from None


def _invalid(
    agent_id: str,
    action_id: str,
    where: str,
    what: str,
    found: list[dict[str, str]],
    answer: str | None = None,
) -> InvalidStepIO:
    first = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    message = (
        f"agent {agent_id!r} action {action_id!r}: {what}: "
        f"at {first['path']}: {first['message']}{more}"
    )
    details: dict[str, object] = {
        "agent": agent_id,
        "action": action_id,
        "where": where,
        "errors": found,
    }
    if answer is not None:
        details["answer"] = _short(answer, _MAX_ANSWER)
    return InvalidStepIO(message, details=details)


def _short(text: str, limit: int = _MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
