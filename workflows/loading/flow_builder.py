"""Builds the flow-control task types (router, sleep, signal, wait) and checks their expressions.

:class:`FlowBuilder` adds to :class:`~workflows.loading.parts_builder.PartsBuilder`
what a workflow's flow tasks need: CEL expressions compiled once, here (a syntax
error or a variable the place does not offer is a problem at its path), durations
(a number of seconds or ``90s``/``15m``/``2h``/``30d``, from 1 second to 30 days),
and the tasks a router may lead to. :mod:`workflows.loading.workflow_builder`
builds on it.
"""

from __future__ import annotations

import re
from typing import Any

from workflows.errors import Problem
from workflows.expressions import Expression, ExpressionError, compile_expression
from workflows.loading.parts_builder import (
    PartsBuilder,
    TemplateTools,
    as_dict,
    as_num,
    as_str,
    frozen,
)
from workflows.loading.yamlsource import Document, JsonPath
from workflows.model import Router, Signal, Task, Trigger, Wait

#: what an expression of a step (a router's condition) may read
STEP_VARIABLES = ("input", "tasks", "event", "error")
#: what a wait's condition reads: the same names, ``event`` being the arriving event
WAIT_VARIABLES = STEP_VARIABLES
#: the shortest and the longest ``delay`` or sleep, in seconds (1 s to 30 days)
MIN_DURATION, MAX_DURATION = 1.0, 30 * 86400.0
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


class FlowBuilder(PartsBuilder):
    """The flow task types of one workflow document, appending every problem to ``problems``."""

    def __init__(self, doc: Document, problems: list[Problem], templates: TemplateTools) -> None:
        super().__init__(doc, problems, templates)
        #: the expressions compiled (path, source), checked against task ids at the end
        self.expression_strings: list[tuple[JsonPath, str]] = []

    def expression(
        self, path: JsonPath, value: Any, variables: tuple[str, ...]
    ) -> Expression | None:
        """A CEL expression compiled now; None (and an error at ``path``) when it does not."""
        if not isinstance(value, str):
            return None
        try:
            compiled = compile_expression(value, variables)
        except ExpressionError as exc:
            self.error(path, exc.message)
            return None
        self.expression_strings.append((path, value))
        return compiled

    def duration(self, path: JsonPath, value: Any) -> float | None:
        """Seconds of a ``delay`` or a ``duration``: a number, or 90s, 15m, 2h, 30d."""
        if value is None:
            return None
        seconds = as_num(value)
        if isinstance(value, str) and (found := _DURATION.match(value)) is not None:
            seconds = float(found.group(1)) * _UNITS[found.group(2)]
        if seconds is None:
            if isinstance(value, str):  # another type is the schema's to report
                self.error(
                    path,
                    f"{value!r} is not a duration: write seconds (90) or a number and a unit "
                    "(90s, 15m, 2h, 30d)",
                )
            return None
        if not MIN_DURATION <= seconds <= MAX_DURATION:
            self.error(path, f"{value!r} is out of range: from 1 second to 30 days")
            return None
        return seconds

    def router_task(self, path: JsonPath, raw: dict[str, Any], task_id: str | None) -> Task | None:
        """A router: its condition compiled, its routes (value -> task id)."""
        condition = self.expression((*path, "condition"), raw.get("condition"), STEP_VARIABLES)
        delay = self.duration((*path, "delay"), raw.get("delay"))
        routes = {k: v for k, v in as_dict(raw.get("routes")).items() if isinstance(v, str)}
        if isinstance(raw.get("routes"), dict) and not raw["routes"]:
            self.error((*path, "routes"), "a router needs at least one route (value: task id)")
        if task_id is None or condition is None or not routes:
            return None
        return Task(
            id=task_id,
            uses="none",
            type="router",
            on_error=as_str(as_dict(raw.get("on_error")).get("next")),
            router=Router(condition, frozen(routes), as_str(raw.get("default"))),
            delay=delay or 0.0,
            location=self.location(path),
        )

    def sleep_task(self, path: JsonPath, raw: dict[str, Any], task_id: str | None) -> Task | None:
        """A sleep: its step waits ``duration`` before it may start, then succeeds at once."""
        duration = self.duration((*path, "duration"), raw.get("duration"))
        if task_id is None or duration is None:
            return None
        return Task(
            id=task_id,
            uses="none",
            type="sleep",
            on_success=as_str(as_dict(raw.get("on_success")).get("next")),
            final=raw.get("final") is True,
            delay=duration,
            location=self.location(path),
        )

    def signal_task(self, path: JsonPath, raw: dict[str, Any], task_id: str | None) -> Task | None:
        """A signal: the event it emits, its payload's templates checked now."""
        signal = as_dict(raw.get("signal"))
        payload = signal.get("payload")
        self.templates((*path, "signal", "payload"), payload)
        delay = self.duration((*path, "delay"), raw.get("delay"))
        name = as_str(signal.get("name"))
        if task_id is None or name is None:
            return None
        return Task(
            id=task_id,
            uses="none",
            type="signal",
            **transitions(raw),
            delay=delay or 0.0,
            signal=Signal(name, frozen(payload) if isinstance(payload, dict) else frozen({})),
            location=self.location(path),
        )

    def wait_task(self, path: JsonPath, raw: dict[str, Any], task_id: str | None) -> Task | None:
        """A wait: the event it waits for, its condition compiled now, its timeout."""
        wait_for = as_dict(raw.get("wait_for"))
        name = as_str(wait_for.get("name"))
        condition = None
        if "condition" in wait_for:
            condition = self.expression(
                (*path, "wait_for", "condition"), wait_for.get("condition"), WAIT_VARIABLES
            )
            if condition is None:
                return None
        timeout = self.duration((*path, "timeout"), raw.get("timeout"))
        on_timeout = as_str(raw.get("on_timeout"))
        if on_timeout is not None and "timeout" not in raw:
            self.error((*path, "on_timeout"), "on_timeout needs a timeout (90s, 15m, 2h, 3d)")
            return None
        if task_id is None or name is None or ("timeout" in raw and timeout is None):
            return None
        return Task(
            id=task_id,
            uses="none",
            type="wait",
            **transitions(raw),
            wait=Wait(name, condition, timeout, on_timeout),
            location=self.location(path),
        )

    def self_signals(self, tasks: list[Task], triggers: list[Trigger]) -> None:
        """Warn about a signal that starts its own workflow: each execution starts another."""
        names = {t.name for t in triggers}
        for index, task in enumerate(tasks):
            if task.signal is not None and task.signal.name in names:
                self.problems.append(
                    self.doc.problem(
                        ("tasks", index, "signal", "name"),
                        f"signal {task.signal.name!r} starts this workflow again: every "
                        "execution that reaches it starts another",
                        warning=True,
                    )
                )


def flow_targets(path: JsonPath, raw: dict[str, Any]) -> list[tuple[JsonPath, str]]:
    """Every task id a task names as where to go: ``next``s, a router's routes and default."""
    found: list[tuple[JsonPath, str]] = []
    for key in ("on_success", "on_error"):
        target = as_str(as_dict(raw.get(key)).get("next"))
        if target is not None:
            found.append(((*path, key, "next"), target))
    if raw.get("type") == "router":
        for value, target in as_dict(raw.get("routes")).items():
            if isinstance(target, str):
                found.append(((*path, "routes", value), target))
        if (default := as_str(raw.get("default"))) is not None:
            found.append(((*path, "default"), default))
    if raw.get("type") == "wait" and (on_timeout := as_str(raw.get("on_timeout"))) is not None:
        found.append(((*path, "on_timeout"), on_timeout))
    return found


def transitions(raw: dict[str, Any]) -> dict[str, Any]:
    """A task's ``on_success.next``, ``on_error.next`` and ``final``, as Task fields."""
    return {
        "on_success": as_str(as_dict(raw.get("on_success")).get("next")),
        "on_error": as_str(as_dict(raw.get("on_error")).get("next")),
        "final": raw.get("final") is True,
    }
