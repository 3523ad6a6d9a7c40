"""Builds the typed model (``workflows.model``) from resolved YAML data, checking meaning.

The structural checks (``workflows.validation``) run first on the same data;
the builder then checks what a schema cannot: duplicate ids, ``next`` targets,
``$use`` targets, actions, ``execute`` files, embedded JSON Schemas, template
syntax, and which tasks no path reaches. It reads defensively, so that a
document with structural errors still gets its other errors reported; the
caller refuses the whole project when anything is wrong.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from workflows.errors import Problem
from workflows.model import (
    Agent,
    AgentAction,
    Defaults,
    Location,
    ModelConfig,
    RetryPolicy,
    Task,
    Tool,
    Trigger,
    Workflow,
)
from workflows.references import UnresolvedReference, locate, parse_use
from workflows.validation import check_schema
from workflows.yamlsource import Document, JsonPath


@dataclass(frozen=True)
class TemplateTools:
    """The static checks of ``workflows.templates`` that definitions go through."""

    #: an error message for a template string with bad syntax, else None
    check_syntax: Callable[[str], str | None]
    #: the dotted paths a template reads (``("tasks", "x", "output")``), when available
    references: Callable[[str], set[tuple[str, ...]]] | None = None


def _frozen(value: Any) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _num(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class Shared:
    """What ``herald.yaml`` provides to every workflow."""

    data: Any = None
    models: dict[str, ModelConfig] = field(default_factory=dict)
    tools: dict[str, Tool] = field(default_factory=dict)
    agents: dict[str, Agent] = field(default_factory=dict)
    defaults: Defaults = field(default_factory=Defaults)


class Builder:
    """Builds model objects from one document's resolved data, appending to ``problems``."""

    def __init__(
        self, doc: Document, problems: list[Problem], templates: TemplateTools | None
    ) -> None:
        self.doc = doc
        self.problems = problems
        self.tools = templates
        #: the template strings met (path, text), checked against task ids at the end
        self.template_strings: list[tuple[JsonPath, str]] = []

    def error(self, path: JsonPath, message: str) -> None:
        """Record an error at ``path`` of this document."""
        self.problems.append(self.doc.problem(path, message))

    def location(self, path: JsonPath) -> Location:
        """Where ``path`` was written."""
        return Location(self.doc.file, self.doc.line_of(path))

    # -- shared pieces -------------------------------------------------------------

    def retry(self, data: Any, base: RetryPolicy) -> RetryPolicy:
        """``base`` with the fields given in ``data`` replaced."""
        data = _dict(data)
        changes: dict[str, Any] = {}
        if (attempts := _int(data.get("attempts"))) is not None:
            changes["attempts"] = attempts
        for key in ("backoff", "backoff_max"):
            if (number := _num(data.get(key))) is not None:
                changes[key] = number
        if isinstance(data.get("jitter"), bool):
            changes["jitter"] = data["jitter"]
        return dataclasses.replace(base, **changes)

    def defaults(self, data: Any, base: Defaults) -> Defaults:
        """``base`` overridden by a ``defaults`` mapping."""
        data = _dict(data)
        timeout = _num(data.get("timeout"))
        max_steps = _int(data.get("max_steps"))
        return Defaults(
            retry=self.retry(data.get("retry"), base.retry),
            timeout=base.timeout if timeout is None else timeout,
            max_steps=base.max_steps if max_steps is None else max_steps,
        )

    def model(self, path: JsonPath, data: Any, fallback_id: str) -> ModelConfig | None:
        """A model configuration (inline, or what a ``$ref`` resolved to)."""
        data = _dict(data)
        provider, model = _str(data.get("provider")), _str(data.get("model"))
        if provider is None or model is None:
            return None
        max_retries = _int(data.get("max_retries"))
        return ModelConfig(
            id=_str(data.get("id")) or fallback_id,
            provider=provider,
            model=model,
            params=_frozen(_dict(data.get("params"))),
            base_url=_str(data.get("base_url")),
            api_key_env=_str(data.get("api_key_env")),
            timeout=_num(data.get("timeout")),
            max_retries=2 if max_retries is None else max_retries,
            location=self.location(path),
        )

    def schema(self, path: JsonPath, value: Any) -> Mapping[str, Any] | None:
        """An embedded JSON Schema, checked against the Draft 2020-12 meta-schema."""
        if value is None:
            return None
        self.problems.extend(check_schema(self.doc, path, value))
        if isinstance(value, bool):
            return _frozen({} if value else {"not": {}})
        return _frozen(_dict(value))

    def tool(self, path: JsonPath, data: Any) -> Tool | None:
        """A tool; its ``execute`` file must exist next to the declaring file."""
        data = _dict(data)
        tool_id, execute = _str(data.get("id")), _str(data.get("execute"))
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
            description=_str(data.get("description")) or "",
            input_schema=input_schema,
            output_schema=output_schema,
            timeout=_num(data.get("timeout")),
            location=self.location(path),
        )

    def agent(self, path: JsonPath, data: Any) -> Agent | None:
        """An agent with its actions; ``default`` is always among them."""
        data = _dict(data)
        agent_id = _str(data.get("id"))
        actions: dict[str, AgentAction] = {}
        for index, raw in enumerate(_list(data.get("actions"))):
            where = (*path, "actions", index)
            raw = _dict(raw)
            action_id = _str(raw.get("id"))
            input_schema = self.schema((*where, "input"), raw.get("input"))
            output_schema = self.schema((*where, "output"), raw.get("output"))
            if action_id is None:
                continue
            if action_id in actions:
                self.error((*where, "id"), f"duplicate action id {action_id!r}")
            actions[action_id] = AgentAction(
                action_id, _str(raw.get("prompt")) or "", input_schema, output_schema
            )
        actions.setdefault("default", AgentAction("default"))
        config = self.model((*path, "config"), data.get("config"), agent_id or "")
        if agent_id is None or config is None:
            return None
        return Agent(
            id=agent_id,
            config=config,
            instructions=_str(data.get("instructions")) or "",
            actions=_frozen(actions),
            location=self.location(path),
        )

    def collection(self, key: str, data: Any) -> dict[str, Any]:
        """The ``tools``/``agents``/``models`` list of a document, by id (duplicates refused)."""
        out: dict[str, Any] = {}
        for index, raw in enumerate(_list(_dict(data).get(key))):
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
        if self.tools is None:
            return
        if isinstance(value, str):
            if (message := self.tools.check_syntax(value)) is not None:
                self.error(path, f"template error: {message}")
            else:
                self.template_strings.append((path, value))
        elif isinstance(value, dict):
            for key, item in value.items():
                self.templates((*path, key), item)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.templates((*path, index), item)

    # -- workflows -----------------------------------------------------------------

    def workflow(self, data: Any, shared: Shared) -> Workflow | None:
        """The workflow of this document, or None when it cannot be built."""
        data = _dict(data)
        triggers = self.triggers(data)
        config = _dict(data.get("config"))
        input_schema = self.schema(("config", "input"), config.get("input"))
        defaults = self.defaults(data.get("defaults"), shared.defaults)
        tools = self.collection("tools", data)
        agents = self.collection("agents", data)
        tasks = self.tasks(data, shared, tools, agents, defaults)
        self.templates(("outputs",), data.get("outputs"))
        self.task_references(data)
        workflow_id = _str(data.get("id"))
        if workflow_id is None or not tasks:
            return None
        self.reachability(tasks)
        outputs = data.get("outputs")
        return Workflow(
            id=workflow_id,
            tasks=tuple(tasks),
            version=str(data.get("version") or ""),
            description=_str(data.get("description")) or "",
            triggers=tuple(triggers),
            input_schema=input_schema,
            outputs=_frozen(outputs) if isinstance(outputs, dict) else None,
            max_steps=defaults.max_steps,
            location=self.location(()),
        )

    def task_references(self, data: dict[str, Any]) -> None:
        """A template that reads ``.tasks.<id>`` must name a task of the workflow."""
        if self.tools is None or self.tools.references is None:
            return
        ids = [i for raw in _list(data.get("tasks")) if (i := _str(_dict(raw).get("id")))]
        for path, text in self.template_strings:
            for ref in sorted(self.tools.references(text)):
                if len(ref) > 1 and ref[0] == "tasks" and ref[1] not in ids:
                    self.error(
                        path,
                        f"template reads .tasks.{ref[1]}, and there is no task {ref[1]!r} "
                        f"(tasks: {', '.join(ids) or 'none'})",
                    )

    def triggers(self, data: dict[str, Any]) -> list[Trigger]:
        """The signal triggers; one name at most once per workflow."""
        out: list[Trigger] = []
        for index, raw in enumerate(_list(data.get("triggers"))):
            path: JsonPath = ("triggers", index)
            raw = _dict(raw)
            schema = self.schema((*path, "schema"), raw.get("schema"))
            name = _str(raw.get("name"))
            if name is None:
                continue
            if any(t.name == name for t in out):
                self.error((*path, "name"), f"trigger {name!r} is declared twice")
                continue
            out.append(Trigger(name, schema, "signal", index, self.location(path)))
        return out

    def tasks(
        self,
        data: dict[str, Any],
        shared: Shared,
        tools: dict[str, Tool],
        agents: dict[str, Agent],
        defaults: Defaults,
    ) -> list[Task]:
        """The tasks, with ``$use`` resolved and transitions checked."""
        raws = _list(data.get("tasks"))
        ids: dict[str, int] = {}
        for index, raw in enumerate(raws):
            task_id = _str(_dict(raw).get("id"))
            if task_id is None:
                continue
            if task_id in ids:
                line = self.doc.line_of(("tasks", ids[task_id]))
                self.error(
                    ("tasks", index, "id"), f"duplicate task id {task_id!r} (first at line {line})"
                )
            else:
                ids[task_id] = index
        out: list[Task] = []
        for index, raw in enumerate(raws):
            task = self.task(("tasks", index), _dict(raw), data, shared, tools, agents, defaults)
            for key in ("on_success", "on_error"):
                target = _str(_dict(_dict(raw).get(key)).get("next"))
                if target is not None and target not in ids:
                    known = ", ".join(ids) or "none"
                    self.error(
                        ("tasks", index, key, "next"),
                        f"next names no task: {target!r} (tasks: {known})",
                    )
            if task is not None:
                out.append(task)
        return out if len(out) == len(raws) else []

    def task(
        self,
        path: JsonPath,
        raw: dict[str, Any],
        data: dict[str, Any],
        shared: Shared,
        tools: dict[str, Tool],
        agents: dict[str, Agent],
        defaults: Defaults,
    ) -> Task | None:
        """One task; None when something it needs is missing (already reported)."""
        task_id = _str(raw.get("id"))
        self.templates((*path, "with"), raw.get("with"))
        use = raw.get("$use")
        if use is None:
            self.error(
                path,
                f"task {task_id or '?'!r} has nothing to run: add "
                '$use: tool(local::tools.#(id=="...")) or agent(local::agents.#(id=="..."))',
            )
            return None
        if not isinstance(use, str):
            return None
        target = self.use((*path, "$use"), use, data, shared, tools, agents)
        action = _str(raw.get("action"))
        if isinstance(target, Agent):
            action = action or "default"
            if action not in target.actions:
                self.error(
                    (*path, "action"),
                    f"agent {target.id!r} has no action {action!r} "
                    f"(actions: {', '.join(target.actions)})",
                )
        elif isinstance(target, Tool) and "action" in raw:
            self.error((*path, "action"), "action is only for agent tasks; this task uses a tool")
        if task_id is None or target is None:
            return None
        timeout = _num(raw.get("timeout"))
        with_ = raw.get("with")
        return Task(
            id=task_id,
            uses="agent" if isinstance(target, Agent) else "tool",
            tool=target if isinstance(target, Tool) else None,
            agent=target if isinstance(target, Agent) else None,
            action=action if isinstance(target, Agent) else None,
            type=_str(raw.get("type")) or "basic",
            with_=_frozen(with_) if isinstance(with_, dict) else _frozen({}),
            on_success=_str(_dict(raw.get("on_success")).get("next")),
            on_error=_str(_dict(raw.get("on_error")).get("next")),
            final=raw.get("final") is True,
            retry=self.retry(raw.get("retry"), defaults.retry),
            timeout=defaults.timeout if timeout is None else timeout,
            location=self.location(path),
        )

    def use(
        self,
        path: JsonPath,
        text: str,
        data: dict[str, Any],
        shared: Shared,
        tools: dict[str, Tool],
        agents: dict[str, Agent],
    ) -> Tool | Agent | None:
        """What a ``$use`` points at: a tool or an agent of this document or herald.yaml."""
        try:
            kind, ref = parse_use(text)
            source, _, value = locate(ref, data, shared.data)
        except UnresolvedReference as exc:
            self.error(path, exc.message)
            return None
        found_id = _str(_dict(value).get("id"))
        pools: dict[str, Mapping[str, Tool | Agent]] = (
            {"tool": tools, "agent": agents}
            if source == "local"
            else {"tool": shared.tools, "agent": shared.agents}
        )
        target = pools[kind].get(found_id or "")
        if target is None:
            other = "agent" if kind == "tool" else "tool"
            if found_id is not None and found_id in pools[other]:
                self.error(path, f"$use {kind}(...) points at the {other} {found_id!r}")
            elif found_id is None:
                article = "an" if kind == "agent" else "a"
                self.error(path, f"$use {text!r} points at something that is not {article} {kind}")
        return target

    def reachability(self, tasks: list[Task]) -> None:
        """Warn about tasks that no path from the first task reaches."""
        seen = {tasks[0].id}
        todo = [tasks[0]]
        by_id = {t.id: t for t in tasks}
        while todo:
            task = todo.pop()
            for nxt in (task.on_success, task.on_error):
                if nxt is not None and nxt not in seen and nxt in by_id:
                    seen.add(nxt)
                    todo.append(by_id[nxt])
        for index, task in enumerate(tasks):
            if task.id not in seen:
                self.problems.append(
                    self.doc.problem(
                        ("tasks", index),
                        f"task {task.id!r} is never reached from the first task {tasks[0].id!r}",
                        warning=True,
                    )
                )
