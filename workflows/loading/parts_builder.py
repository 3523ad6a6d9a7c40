"""Builds the parts definitions share (models, tools, agents, defaults) from resolved YAML data.

The structural checks (:mod:`workflows.loading.validation`) run first on the same
data; the builder then checks what a schema cannot: duplicate ids, ``execute``
files, embedded JSON Schemas, template syntax. It reads defensively, so that a
document with structural errors still gets its other errors reported; the loader
refuses the whole project when anything is wrong. ``herald.yaml`` is built by
:class:`PartsBuilder` alone; a workflow document, which may declare its own tools
and agents, by :mod:`workflows.loading.workflow_builder` on top of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from workflows.errors import Problem
from workflows.loading.validation import check_schema
from workflows.loading.yamlsource import Document, JsonPath
from workflows.model import (
    Agent,
    AgentAction,
    Defaults,
    Location,
    ModelConfig,
    RetryPolicy,
    Tool,
)


@dataclass(frozen=True)
class TemplateTools:
    """The static checks of :mod:`workflows.templates` that definitions go through."""

    #: an error message for a template string with bad syntax, else None
    check_syntax: Callable[[str], str | None]
    #: the dotted paths a template reads (``("tasks", "x", "output")``)
    references: Callable[[str], set[tuple[str, ...]]]


def frozen(value: Any) -> Mapping[str, Any]:
    """A read-only view of a mapping (of an empty one for anything else)."""
    return MappingProxyType(as_dict(value))


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a mapping, else ``{}`` (its type error is reported elsewhere)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` if it is a list, else ``[]``."""
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str | None:
    """``value`` if it is a string, else None."""
    return value if isinstance(value, str) else None


def as_num(value: Any) -> float | None:
    """``value`` as a float if it is a number (not a boolean), else None."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else None


def as_int(value: Any) -> int | None:
    """``value`` if it is an integer (not a boolean), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class Shared:
    """What ``herald.yaml`` provides to every workflow."""

    data: Any = None
    models: dict[str, ModelConfig] = field(default_factory=dict)
    tools: dict[str, Tool] = field(default_factory=dict)
    agents: dict[str, Agent] = field(default_factory=dict)
    defaults: Defaults = field(default_factory=Defaults)


class PartsBuilder:
    """Builds the parts of one document's resolved data, appending to ``problems``."""

    def __init__(self, doc: Document, problems: list[Problem], templates: TemplateTools) -> None:
        self.doc = doc
        self.problems = problems
        self.template_tools = templates
        #: the template strings met (path, text), checked against task ids at the end
        self.template_strings: list[tuple[JsonPath, str]] = []

    def error(self, path: JsonPath, message: str) -> None:
        """Record an error at ``path`` of this document."""
        self.problems.append(self.doc.problem(path, message))

    def location(self, path: JsonPath) -> Location:
        """Where ``path`` was written."""
        return Location(self.doc.file, self.doc.line_of(path))

    def retry(self, data: Any, base: RetryPolicy) -> RetryPolicy:
        """``base`` with the fields given in ``data`` replaced."""
        data = as_dict(data)
        changes: dict[str, Any] = {}
        if (attempts := as_int(data.get("attempts"))) is not None:
            changes["attempts"] = attempts
        for key in ("backoff", "backoff_max"):
            if (number := as_num(data.get(key))) is not None:
                changes[key] = number
        if isinstance(data.get("jitter"), bool):
            changes["jitter"] = data["jitter"]
        return dataclasses.replace(base, **changes)

    def defaults(self, data: Any, base: Defaults) -> Defaults:
        """``base`` overridden by a ``defaults`` mapping."""
        data = as_dict(data)
        timeout = as_num(data.get("timeout"))
        max_steps = as_int(data.get("max_steps"))
        return Defaults(
            retry=self.retry(data.get("retry"), base.retry),
            timeout=base.timeout if timeout is None else timeout,
            max_steps=base.max_steps if max_steps is None else max_steps,
        )

    def model(self, path: JsonPath, data: Any, fallback_id: str) -> ModelConfig | None:
        """A model configuration (inline, or what a ``$ref`` resolved to)."""
        data = as_dict(data)
        provider, model = as_str(data.get("provider")), as_str(data.get("model"))
        if provider is None or model is None:
            return None
        max_retries = as_int(data.get("max_retries"))
        return ModelConfig(
            id=as_str(data.get("id")) or fallback_id,
            provider=provider,
            model=model,
            params=frozen(as_dict(data.get("params"))),
            base_url=as_str(data.get("base_url")),
            api_key_env=as_str(data.get("api_key_env")),
            timeout=as_num(data.get("timeout")),
            max_retries=2 if max_retries is None else max_retries,
            location=self.location(path),
        )

    def schema(self, path: JsonPath, value: Any) -> Mapping[str, Any] | None:
        """An embedded JSON Schema, checked against the Draft 2020-12 meta-schema."""
        if value is None:
            return None
        self.problems.extend(check_schema(self.doc, path, value))
        if isinstance(value, bool):
            return frozen({} if value else {"not": {}})
        return frozen(as_dict(value))

    def tool(self, path: JsonPath, data: Any) -> Tool | None:
        """A tool; its ``execute`` file must exist next to the declaring file."""
        data = as_dict(data)
        tool_id, execute = as_str(data.get("id")), as_str(data.get("execute"))
        input_schema = self.schema((*path, "input"), data.get("input"))
        output_schema = self.schema((*path, "output"), data.get("output"))
        if tool_id is None or not execute:
            return None
        target = (self.doc.path.parent / execute).resolve()
        if not target.is_file():
            self.error((*path, "execute"), f"tool {tool_id!r}: execute file {execute!r} not found")
        return Tool(
            id=tool_id,
            execute=execute,
            path=target,
            description=as_str(data.get("description")) or "",
            input_schema=input_schema,
            output_schema=output_schema,
            timeout=as_num(data.get("timeout")),
            location=self.location(path),
        )

    def agent(self, path: JsonPath, data: Any) -> Agent | None:
        """An agent with its actions; ``default`` is always among them."""
        data = as_dict(data)
        agent_id = as_str(data.get("id"))
        actions: dict[str, AgentAction] = {}
        for index, raw in enumerate(as_list(data.get("actions"))):
            where = (*path, "actions", index)
            raw = as_dict(raw)
            action_id = as_str(raw.get("id"))
            input_schema = self.schema((*where, "input"), raw.get("input"))
            output_schema = self.schema((*where, "output"), raw.get("output"))
            if action_id is None:
                continue
            if action_id in actions:
                self.error((*where, "id"), f"duplicate action id {action_id!r}")
            actions[action_id] = AgentAction(
                action_id, as_str(raw.get("prompt")) or "", input_schema, output_schema
            )
        actions.setdefault("default", AgentAction("default"))
        config = self.model((*path, "config"), data.get("config"), agent_id or "")
        if agent_id is None or config is None:
            return None
        return Agent(
            id=agent_id,
            config=config,
            instructions=as_str(data.get("instructions")) or "",
            actions=frozen(actions),
            location=self.location(path),
        )

    def collection(self, key: str, data: Any) -> dict[str, Any]:
        """The ``tools``/``agents``/``models`` list of a document, by id (duplicates refused)."""
        out: dict[str, Any] = {}
        for index, raw in enumerate(as_list(as_dict(data).get(key))):
            path: JsonPath = (key, index)
            if key == "tools":
                built: Any = self.tool(path, raw)
            elif key == "agents":
                built = self.agent(path, raw)
            else:
                built = self.model(path, raw, "")
            if built is None:
                continue
            if built.id in out:
                first = out[built.id].location
                self.error(
                    (*path, "id"), f"duplicate {key[:-1]} id {built.id!r} (first at {first})"
                )
                continue
            out[built.id] = built
        return out

    def templates(self, path: JsonPath, value: Any) -> None:
        """Report every string under ``value`` whose template syntax is wrong."""
        if isinstance(value, str):
            if (message := self.template_tools.check_syntax(value)) is not None:
                self.error(path, f"template error: {message}")
            else:
                self.template_strings.append((path, value))
        elif isinstance(value, dict):
            for key, item in value.items():
                self.templates((*path, key), item)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.templates((*path, index), item)
