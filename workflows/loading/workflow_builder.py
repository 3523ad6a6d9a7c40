"""Builds a workflow (``workflows.model.Workflow``) from one resolved YAML document.

On top of the parts of :mod:`workflows.loading.parts_builder` (its own tools and
agents) and the flow task types of :mod:`workflows.loading.flow_builder`, it checks
the workflow's meaning: unique task ids and trigger names, ``next`` targets and a
router's routes, what ``$use`` points at, ``action`` against the agent, templates
and expressions reading ``.tasks.<id>``, and which tasks no path from the first one
reaches (a warning).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from workflows.expressions import task_reads
from workflows.loading.flow_builder import STEP_VARIABLES, FlowBuilder, flow_targets, transitions
from workflows.loading.parts_builder import (
    Shared,
    as_dict,
    as_int,
    as_list,
    as_num,
    as_str,
    frozen,
)
from workflows.loading.references import UnresolvedReference, locate, parse_use
from workflows.loading.validation import check_payload_schema
from workflows.loading.yamlsource import JsonPath, format_path
from workflows.model import Agent, Collection, Defaults, Parallel, Task, Tool, Trigger, Workflow

#: what a trigger's ``filter`` reads: the payload, as ``input`` and ``event.payload``
FILTER_VARIABLES = ("input", "event")


class WorkflowBuilder(FlowBuilder):
    """Builds one workflow document, appending every problem to ``problems``."""

    def workflow(self, data: Any, shared: Shared) -> Workflow | None:
        """The workflow of this document, or None when it cannot be built."""
        data = as_dict(data)
        triggers = self.triggers(data)
        config = as_dict(data.get("config"))
        input_schema = self.schema(("config", "input"), config.get("input"))
        defaults = self.defaults(data.get("defaults"), shared.defaults)
        tools = self.collection("tools", data)
        agents = self.collection("agents", data)
        tasks = self.tasks(data, shared, tools, agents, defaults)
        self.templates(("outputs",), data.get("outputs"))
        self.task_references(data)
        workflow_id = as_str(data.get("id"))
        if workflow_id is None or not tasks:
            return None
        self.reachability(tasks)
        self.self_signals(tasks, triggers)
        outputs = data.get("outputs")
        return Workflow(
            id=workflow_id,
            tasks=tuple(tasks),
            version=str(data.get("version") or ""),
            description=as_str(data.get("description")) or "",
            triggers=tuple(triggers),
            input_schema=input_schema,
            outputs=frozen(outputs) if isinstance(outputs, dict) else None,
            max_steps=defaults.max_steps,
            location=self.location(()),
        )

    def task_references(self, data: dict[str, Any]) -> None:
        """A template that reads ``.tasks.<id>`` must name a task of the workflow."""
        ids = [i for raw in as_list(data.get("tasks")) if (i := as_str(as_dict(raw).get("id")))]
        for path, text in self.template_strings:
            for ref in sorted(self.template_tools.references(text)):
                if len(ref) > 1 and ref[0] == "tasks" and ref[1] not in ids:
                    self.error(
                        path,
                        f"template reads .tasks.{ref[1]}, and there is no task {ref[1]!r} "
                        f"(tasks: {', '.join(ids) or 'none'})",
                    )
        for path, source in self.expression_strings:
            for task_id in sorted(task_reads(source)):
                if task_id not in ids:
                    self.error(
                        path,
                        f"expression reads tasks.{task_id}, and there is no task {task_id!r} "
                        f"(tasks: {', '.join(ids) or 'none'})",
                    )

    def triggers(self, data: dict[str, Any]) -> list[Trigger]:
        """The signal triggers; one name at most once per workflow."""
        out: list[Trigger] = []
        for index, raw in enumerate(as_list(data.get("triggers"))):
            path: JsonPath = ("triggers", index)
            raw = as_dict(raw)
            schema = self.schema((*path, "schema"), raw.get("schema"))
            self.problems.extend(
                check_payload_schema(self.doc, (*path, "schema"), raw.get("schema"))
            )
            name = as_str(raw.get("name"))
            if name is None:
                continue
            if any(t.name == name for t in out):
                self.error((*path, "name"), f"trigger {name!r} is declared twice")
                continue
            condition = self.expression((*path, "filter"), raw.get("filter"), FILTER_VARIABLES)
            out.append(Trigger(name, schema, "signal", index, self.location(path), condition))
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
        raws = as_list(data.get("tasks"))
        ids: dict[str, int] = {}
        for index, raw in enumerate(raws):
            task_id = as_str(as_dict(raw).get("id"))
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
            task = self.task(("tasks", index), as_dict(raw), data, shared, tools, agents, defaults)
            for where, target in flow_targets(("tasks", index), as_dict(raw)):
                if target not in ids:
                    known = ", ".join(ids) or "none"
                    last = where[-1]
                    what = last if last in ("next", "default", "on_timeout") else f"route {last!r}"
                    self.error(where, f"{what} names no task: {target!r} (tasks: {known})")
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
        task_id = as_str(raw.get("id"))
        if raw.get("type") == "parallel":
            return self.parallel_task(path, raw, data, shared, tools, agents, defaults)
        if raw.get("type") == "collection":
            return self.collection_task(path, raw, data, shared, tools, agents, defaults)
        if raw.get("type") == "router":
            return self.router_task(path, raw, task_id)
        if raw.get("type") == "sleep":
            return self.sleep_task(path, raw, task_id)
        if raw.get("type") == "signal":
            return self.signal_task(path, raw, task_id)
        if raw.get("type") == "wait":
            return self.wait_task(path, raw, task_id)
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
        action = as_str(raw.get("action"))
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
        timeout = as_num(raw.get("timeout"))
        with_ = raw.get("with")
        delay = self.duration((*path, "delay"), raw.get("delay"))
        return Task(
            id=task_id,
            uses="agent" if isinstance(target, Agent) else "tool",
            tool=target if isinstance(target, Tool) else None,
            agent=target if isinstance(target, Agent) else None,
            action=action if isinstance(target, Agent) else None,
            type=as_str(raw.get("type")) or "basic",
            with_=frozen(with_) if isinstance(with_, dict) else frozen({}),
            on_success=as_str(as_dict(raw.get("on_success")).get("next")),
            on_error=as_str(as_dict(raw.get("on_error")).get("next")),
            final=raw.get("final") is True,
            retry=self.retry(raw.get("retry"), defaults.retry),
            timeout=defaults.timeout if timeout is None else timeout,
            delay=delay or 0.0,
            location=self.location(path),
        )

    def parallel_task(
        self,
        path: JsonPath,
        raw: dict[str, Any],
        data: dict[str, Any],
        shared: Shared,
        tools: dict[str, Tool],
        agents: dict[str, Agent],
        defaults: Defaults,
    ) -> Task | None:
        """A parallel task: its children (ids ``<parent>.<child>``), strategy and max_workers."""
        task_id = as_str(raw.get("id"))
        top = {as_str(as_dict(t).get("id")) for t in as_list(data.get("tasks"))}
        children: list[Task] = []
        raws = as_list(raw.get("tasks"))
        for index, child_raw in enumerate(raws):
            where: JsonPath = (*path, "tasks", index)
            child = self.task(where, as_dict(child_raw), data, shared, tools, agents, defaults)
            if child is None or task_id is None:
                continue
            if any(c.short_id == child.id for c in children):
                self.error((*where, "id"), f"duplicate task id {child.id!r} in {task_id!r}")
                continue
            qualified = f"{task_id}.{child.id}"
            if qualified in top:
                self.error(
                    (*where, "id"),
                    f"{task_id!r}'s task {child.id!r} is {qualified!r}, the id of another task",
                )
                continue
            children.append(dataclasses.replace(child, id=qualified, parent=task_id))
        max_workers = as_int(raw.get("max_workers"))
        if task_id is None or not children or len(children) != len(raws):
            return None
        return Task(
            id=task_id,
            uses="none",
            type="parallel",
            **transitions(raw),
            delay=self.duration((*path, "delay"), raw.get("delay")) or 0.0,
            parallel=Parallel(
                tuple(children), as_str(raw.get("strategy")) or "wait_all", max_workers
            ),
            location=self.location(path),
        )

    def collection_task(
        self,
        path: JsonPath,
        raw: dict[str, Any],
        data: dict[str, Any],
        shared: Shared,
        tools: dict[str, Tool],
        agents: dict[str, Agent],
        defaults: Defaults,
    ) -> Task | None:
        """A collection: its items (template or expression), filter, and the task per item."""
        task_id = as_str(raw.get("id"))
        item_var = as_str(raw.get("item_var")) or "item"
        index_var = as_str(raw.get("index_var")) or "index"
        if item_var == index_var:
            self.error((*path, "index_var"), f"index_var and item_var are both {item_var!r}")
        text = as_str(raw.get("items"))
        items: Any = None
        if text is not None and "{{" in text:
            self.templates((*path, "items"), text)
            items = text
        elif text is not None:
            items = self.expression((*path, "items"), text, STEP_VARIABLES)
        per_item = (*STEP_VARIABLES, item_var, index_var)
        filter_ = self.expression((*path, "filter"), raw.get("filter"), per_item)
        task_raw = {"id": "item", **as_dict(raw.get("task"))}
        child = self.task((*path, "task"), task_raw, data, shared, tools, agents, defaults)
        delay = self.duration((*path, "delay"), raw.get("delay"))
        if task_id is None or child is None or items is None:
            return None
        if raw.get("filter") is not None and filter_ is None:
            return None
        per_item_task = dataclasses.replace(child, id=f"{task_id}[]", parent=task_id)
        return Task(
            id=task_id,
            uses="none",
            type="collection",
            **transitions(raw),
            delay=delay or 0.0,
            collection=Collection(
                task=per_item_task,
                items=items,
                item_var=item_var,
                index_var=index_var,
                mode=as_str(raw.get("mode")) or "parallel",
                max_workers=as_int(raw.get("max_workers")),
                filter=filter_,
            ),
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
            source, where, value = locate(ref, data, shared.data)
        except UnresolvedReference as exc:
            self.error(path, exc.message)
            return None
        collection = f"{kind}s"
        if len(where) != 2 or where[0] != collection:
            found = format_path(where) or "the whole document"
            self.error(
                path, f"$use {kind}(...) must point at an entry of {collection}, not {found}"
            )
            return None
        pool: Mapping[str, Tool | Agent]
        if source == "local":
            pool = tools if kind == "tool" else agents
        else:
            pool = shared.tools if kind == "tool" else shared.agents
        # an entry that did not build has its own errors already
        return pool.get(as_str(as_dict(value).get("id")) or "")

    def reachability(self, tasks: list[Task]) -> None:
        """Warn about tasks no path from the first task reaches, and ``next``s never followed."""
        seen = {tasks[0].id}
        todo = [tasks[0]]
        by_id = {t.id: t for t in tasks}
        while todo:
            task = todo.pop()
            # after a final task's success the execution ends; its on_error still applies
            for nxt in task.next_tasks():
                if nxt not in seen and nxt in by_id:
                    seen.add(nxt)
                    todo.append(by_id[nxt])
        for index, task in enumerate(tasks):
            if task.final and task.on_success is not None:
                self.problems.append(
                    self.doc.problem(
                        ("tasks", index, "on_success", "next"),
                        f"task {task.id!r} is final: on_success.next {task.on_success!r} "
                        "is never followed",
                        warning=True,
                    )
                )
            if task.id not in seen:
                self.problems.append(
                    self.doc.problem(
                        ("tasks", index),
                        f"task {task.id!r} is never reached from the first task {tasks[0].id!r}",
                        warning=True,
                    )
                )
