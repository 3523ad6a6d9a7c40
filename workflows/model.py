"""The typed, immutable model of a herald project, built by the loader from YAML.

Everything here is a frozen dataclass; mappings are read-only views. Once a
project has loaded, nothing in it changes: a reload builds a new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from workflows.errors import Problem
from workflows.expressions import Expression

JSON = Any
"""A value that came from JSON or YAML: dict, list, str, int, float, bool or None."""

EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    """Default factory for mapping fields (a mappingproxy default is refused on Python 3.11)."""
    return EMPTY


@dataclass(frozen=True)
class Location:
    """Where something was defined: a file (relative to the project) and a 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class RetryPolicy:
    """How often a task is attempted and how long to wait between attempts."""

    #: attempts in all, the first included (1 means no retry)
    attempts: int = 1
    #: delay before the second attempt, in seconds; doubles each time
    backoff: float = 1.0
    #: the longest delay between two attempts
    backoff_max: float = 300.0
    #: add up to 100% random jitter to each delay
    jitter: bool = True

    def delay(self, failed_attempts: int, rand: float = 0.0) -> float:
        """Seconds to wait after ``failed_attempts`` failures; ``rand`` in [0, 1) is the jitter."""
        base: float = min(self.backoff * 2.0 ** max(failed_attempts - 1, 0), self.backoff_max)
        return base * (1 + rand) if self.jitter else base


@dataclass(frozen=True)
class Defaults:
    """Project-wide defaults from ``herald.yaml``, overridable per workflow and per task."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: seconds a step may run before it is stopped
    timeout: float = 300.0
    #: steps an execution may run in all (bounds loops made with ``next``)
    max_steps: int = 100


@dataclass(frozen=True)
class ModelConfig:
    """An LLM configuration: provider, model name and call parameters."""

    id: str
    #: ``openai`` (any OpenAI-compatible Chat Completions endpoint) or ``mock``
    provider: str
    model: str
    #: call parameters passed to the provider (temperature, max_tokens...)
    params: Mapping[str, JSON] = field(default_factory=_empty)
    base_url: str | None = None
    #: name of the environment variable holding the API key (never the key itself)
    api_key_env: str | None = None
    timeout: float | None = None
    max_retries: int = 2
    location: Location | None = None


@dataclass(frozen=True)
class AgentAction:
    """A named thing an agent can be asked to do."""

    id: str
    #: the prompt template, rendered with the task's ``with`` as ``.with`` (optional)
    prompt: str = ""
    input_schema: Mapping[str, JSON] | None = None
    output_schema: Mapping[str, JSON] | None = None


@dataclass(frozen=True)
class Agent:
    """An LLM agent: a model configuration, instructions and actions."""

    id: str
    config: ModelConfig
    instructions: str = ""
    #: by action id; ``default`` always exists
    actions: Mapping[str, AgentAction] = field(default_factory=_empty)
    location: Location | None = None


@dataclass(frozen=True)
class Tool:
    """Something a task can run: a Python file with ``run(input)`` or any executable."""

    id: str
    #: the ``execute`` string as written (``./tools/x.py``)
    execute: str
    #: ``execute`` resolved against the file that declared the tool
    path: Path
    description: str = ""
    input_schema: Mapping[str, JSON] | None = None
    output_schema: Mapping[str, JSON] | None = None
    #: seconds; ``None`` means the task's timeout
    timeout: float | None = None
    location: Location | None = None

    @property
    def is_python(self) -> bool:
        """A ``.py`` file runs in the worker process; anything else as a subprocess."""
        return self.path.suffix == ".py"


@dataclass(frozen=True)
class Trigger:
    """A signal trigger: the workflow starts when an event of this name arrives."""

    name: str
    schema: Mapping[str, JSON] | None = None
    type: Literal["signal"] = "signal"
    #: position in the workflow's ``triggers`` list
    index: int = 0
    location: Location | None = None
    #: a CEL condition on the event (``input``, ``event``): false, the workflow is not started
    filter: Expression | None = None


#: the task types: ``basic`` runs a tool or an agent; the others settle without one
TASK_TYPES = ("basic", "router", "sleep", "signal", "parallel", "collection", "wait")
#: how a parallel task joins its children
STRATEGIES = ("wait_all", "fail_fast", "best_effort", "race")


@dataclass(frozen=True)
class Router:
    """A router's choice: the value of ``condition`` picks the next task among ``routes``."""

    condition: Expression
    #: value (as text, see :func:`workflows.expressions.route_key`) -> task id
    routes: Mapping[str, str]
    #: the task for a value with no route; None makes such a value a step error
    default: str | None = None


@dataclass(frozen=True)
class Signal:
    """An event a ``signal`` task emits: its name and its payload (templates)."""

    name: str
    payload: Mapping[str, JSON] = field(default_factory=_empty)


@dataclass(frozen=True)
class Wait:
    """What a ``wait`` task waits for: an event of this name whose ``condition`` holds."""

    #: the awaited event name
    event: str
    #: CEL over ``input``, ``tasks``, ``error`` and ``event`` (the arriving event); None: any
    condition: Expression | None = None
    #: seconds before the wait times out; None waits for as long as it takes
    timeout: float | None = None
    #: the task to go to on timeout (else ``on_error``, else the execution fails)
    on_timeout: str | None = None


@dataclass(frozen=True)
class Parallel:
    """A parallel task's children (tasks whose ids are ``<parent>.<child>``) and its join."""

    children: tuple[Task, ...]
    #: ``wait_all``, ``fail_fast``, ``best_effort`` or ``race``
    strategy: str = "wait_all"
    #: children running at once (all of them when None)
    max_workers: int | None = None

    def child(self, task_id: str) -> Task | None:
        """The child with this (qualified) id, or None."""
        return next((c for c in self.children if c.id == task_id), None)


@dataclass(frozen=True)
class Collection:
    """A collection task: ``task`` runs once per item of ``items``, as a child step.

    Each item's step has the task id ``<parent>[<index>]``; ``task.id`` is ``<parent>[]``.
    """

    task: Task
    #: a CEL expression, or a template string, giving the list
    items: Expression | str
    item_var: str = "item"
    index_var: str = "index"
    #: ``parallel`` (at most ``max_workers`` at once) or ``sequential`` (one at a time)
    mode: str = "parallel"
    max_workers: int | None = None
    #: the items kept: those for which it is true (all when None)
    filter: Expression | None = None

    def limit(self, items: int) -> int:
        """How many items' steps may be unfinished at once."""
        if self.mode == "sequential":
            return 1
        return min(self.max_workers or items, items) or 1


@dataclass(frozen=True)
class Task:
    """One step of a workflow."""

    id: str
    #: ``tool`` or ``agent``: what ``$use`` points at; ``none`` for the types that run neither
    uses: Literal["tool", "agent", "none"]
    tool: Tool | None = None
    agent: Agent | None = None
    #: the agent action to run (``default`` when not given)
    action: str | None = None
    type: str = "basic"
    #: the raw ``with`` mapping, templates not yet rendered
    with_: Mapping[str, JSON] = field(default_factory=_empty)
    #: the task to run after success, and after an error
    on_success: str | None = None
    on_error: str | None = None
    #: the execution ends after this task
    final: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 300.0
    #: seconds each step of this task waits before it may start (``delay``; a sleep's duration)
    delay: float = 0.0
    #: a ``router`` task's condition and routes
    router: Router | None = None
    #: a ``signal`` task's event
    signal: Signal | None = None
    #: a ``parallel`` task's children and join
    parallel: Parallel | None = None
    #: a ``collection`` task's items and the task run per item
    collection: Collection | None = None
    #: a ``wait`` task's awaited event and timeout
    wait: Wait | None = None
    #: for a child of a parallel task: the parent's id (its own id is ``<parent>.<child>``)
    parent: str | None = None
    location: Location | None = None

    @property
    def short_id(self) -> str:
        """The id as written: a child's without its parent's prefix."""
        return self.id[len(self.parent) + 1 :] if self.parent is not None else self.id

    @property
    def settles_alone(self) -> bool:
        """Runs no tool or agent: the engine settles its step in the claim's transaction."""
        return self.uses == "none"

    def next_tasks(self) -> tuple[str, ...]:
        """Every task this one may lead to (``next`` targets, routes, default)."""
        found: list[str] = []
        if self.on_success is not None and not self.final:
            found.append(self.on_success)
        if self.router is not None:
            found.extend(self.router.routes.values())
            if self.router.default is not None:
                found.append(self.router.default)
        if self.wait is not None and self.wait.on_timeout is not None:
            found.append(self.wait.on_timeout)
        if self.on_error is not None:
            found.append(self.on_error)
        return tuple(dict.fromkeys(found))

    @property
    def step_timeout(self) -> float:
        """Seconds one attempt may run: the tool's own timeout, else the task's."""
        if self.tool is not None and self.tool.timeout is not None:
            return self.tool.timeout
        return self.timeout


@dataclass(frozen=True)
class Workflow:
    """A workflow: its triggers and the tasks it runs, first task first."""

    id: str
    tasks: tuple[Task, ...]
    version: str = ""
    description: str = ""
    triggers: tuple[Trigger, ...] = ()
    #: ``config.input`` with every ``$ref`` resolved
    input_schema: Mapping[str, JSON] | None = None
    #: optional ``outputs`` map (templates) that makes the execution's output
    outputs: Mapping[str, JSON] | None = None
    max_steps: int = 100
    location: Location | None = None

    def task(self, task_id: str) -> Task:
        """The task with this id (a parallel task's child too); ``KeyError`` if there is none."""
        found = self.find_task(task_id)
        if found is None:
            raise KeyError(task_id)
        return found

    def find_task(self, task_id: str) -> Task | None:
        """The task with this id, or None (definitions may change under a running execution).

        A parallel task's child is found by its id (``<parent>.<child>``); a collection's
        item step (``<parent>[<index>]``) finds the task the collection runs per item.
        """
        item_of = (
            task_id[: task_id.rindex("[")] if task_id.endswith("]") and "[" in task_id else None
        )
        for task in self.tasks:
            if task.id == task_id:
                return task
            if task.parallel is not None and (child := task.parallel.child(task_id)) is not None:
                return child
            if task.collection is not None and task.id == item_of:
                return task.collection.task
        return None

    @property
    def fans_out(self) -> bool:
        """Some task has children (parallel, collection): they do not count as steps taken."""
        return any(t.parallel is not None or t.collection is not None for t in self.tasks)

    @property
    def first_task(self) -> Task:
        """The task an execution starts with."""
        return self.tasks[0]


@dataclass(frozen=True)
class Project:
    """A loaded project: every workflow, the shared pieces of ``herald.yaml``, defaults."""

    root: Path
    workflows: Mapping[str, Workflow]
    models: Mapping[str, ModelConfig] = field(default_factory=_empty)
    tools: Mapping[str, Tool] = field(default_factory=_empty)
    agents: Mapping[str, Agent] = field(default_factory=_empty)
    defaults: Defaults = field(default_factory=Defaults)
    #: the files loaded, relative to ``root``, in load order
    files: tuple[str, ...] = ()
    #: problems that do not stop loading (an unreachable task...)
    warnings: tuple[Problem, ...] = ()


class ExecutionStatus(StrEnum):
    """Where an execution stands."""

    PENDING = "pending"  # created, first step not yet started
    RUNNING = "running"  # at least one step has started
    SUCCEEDED = "succeeded"  # reached an end (final task or no next) after a success
    FAILED = "failed"  # a step failed with no on_error path, or a limit was hit
    CANCELLED = "cancelled"  # cancelled through the API

    @property
    def finished(self) -> bool:
        """No more steps will run."""
        return self in (
            ExecutionStatus.SUCCEEDED,
            ExecutionStatus.FAILED,
            ExecutionStatus.CANCELLED,
        )


class StepStatus(StrEnum):
    """Where one step (one visit of a task) stands."""

    QUEUED = "queued"  # recorded, message published (or about to be), not started
    RUNNING = "running"  # claimed by a worker
    WAITING = "waiting"  # children run (parallel, collection), or a wait awaits its event
    RETRYING = "retrying"  # an attempt failed; waiting for the next one (not_before)
    SUCCEEDED = "succeeded"  # the tool or agent returned an output
    FAILED = "failed"  # attempts exhausted, or a failure that retrying cannot fix
    TIMED_OUT = "timed_out"  # the last attempt outlived its timeout
    CANCELLED = "cancelled"  # the execution was cancelled before the step finished

    @property
    def finished(self) -> bool:
        """The step will not run again."""
        return self in (
            StepStatus.SUCCEEDED,
            StepStatus.FAILED,
            StepStatus.TIMED_OUT,
            StepStatus.CANCELLED,
        )


class EventStatus(StrEnum):
    """Where an accepted event stands."""

    ACCEPTED = "accepted"  # committed; dispatch not yet done
    DISPATCHED = "dispatched"  # its executions exist and their first steps were published
    UNROUTED = "unrouted"  # no workflow subscribed when it arrived; kept and replayable
