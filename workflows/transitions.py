"""The engine's transition function: after a step, what runs next and how the execution stands.

:func:`decide` is pure: no database, no clock, no Celery. The engine calls it in the
transaction that records a step's result, then publishes or finishes after commit.

The rules, in order:

- **Success.** A ``final`` task ends the execution ``SUCCEEDED``. A router's success
  names its next task (:attr:`Outcome.route`), which runs. Otherwise
  ``on_success.next`` runs if set; with no ``next`` the execution ends ``SUCCEEDED``.
- **Error.** ``on_error.next`` runs if set, even when the task is ``final``; the step's
  error is handed to that task as ``{{ .error }}`` (:attr:`Decision.cause`). With no
  ``on_error`` the execution ends ``FAILED`` with the step's error.
- **Handled errors.** An execution that went through ``on_error`` and later reaches an
  end after a success ends ``SUCCEEDED``: the error was handled. The failed step stays
  recorded as failed, so the history still shows it.
- **Step limit.** Loops made with ``next`` are allowed but bounded: following a ``next``
  when ``steps_taken >= workflow.max_steps`` ends the execution ``FAILED`` instead.
- **Missing task.** A ``next`` naming a task the workflow no longer has (the
  definitions changed while the execution ran) ends the execution ``FAILED``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from workflows.model import JSON, ExecutionStatus, Task, Workflow

#: ``type`` of the execution error when the step limit is reached
STEP_LIMIT = "step_limit"
#: ``type`` of the execution error when ``next`` names a task that does not exist
UNKNOWN_TASK = "unknown_task"
#: ``type`` used when a failed outcome carries no error record
STEP_FAILED = "step_failed"


@dataclass(frozen=True)
class Outcome:
    """How a step ended: success with an output, or an error record."""

    ok: bool
    output: JSON = None
    #: the step error record ``{"type", "message", ...}``
    error: Mapping[str, JSON] | None = None
    #: the task a router chose (its route for the condition's value, or its default)
    route: str | None = None


@dataclass(frozen=True)
class Decision:
    """What the engine does after a step."""

    #: the task to run next, or ``None`` when the execution ends
    next_task: str | None
    #: ``RUNNING`` when ``next_task`` is set; else ``SUCCEEDED`` or ``FAILED``
    status: ExecutionStatus
    #: the error handed to the next task as ``{{ .error }}`` (an ``on_error`` target)
    cause: Mapping[str, JSON] | None = None
    #: the execution's error when it ends ``FAILED``
    error: Mapping[str, JSON] | None = None


def decide(workflow: Workflow, task: Task, outcome: Outcome, steps_taken: int) -> Decision:
    """What follows ``task`` ending with ``outcome`` after ``steps_taken`` steps in all."""
    if outcome.ok:
        if outcome.route is not None:
            return _follow(workflow, task, outcome.route, "route", steps_taken, cause=None)
        if task.final or task.on_success is None:
            return Decision(next_task=None, status=ExecutionStatus.SUCCEEDED)
        return _follow(workflow, task, task.on_success, "on_success", steps_taken, cause=None)
    error = _step_error(task, outcome)
    if task.on_error is None:
        return Decision(next_task=None, status=ExecutionStatus.FAILED, error=error)
    return _follow(workflow, task, task.on_error, "on_error", steps_taken, cause=error)


def _follow(
    workflow: Workflow,
    task: Task,
    next_id: str,
    via: str,
    steps_taken: int,
    cause: Mapping[str, JSON] | None,
) -> Decision:
    """Run ``next_id`` next, unless the step limit is reached or the task does not exist."""
    where = f"{task.id} route" if via == "route" else f"{task.id}.{via}.next"
    if steps_taken >= workflow.max_steps:
        message = (
            f"step limit reached: {steps_taken} steps taken, the workflow allows"
            f" {workflow.max_steps} (max_steps); {where} -> {next_id} not run"
        )
        return _failed(STEP_LIMIT, message, task, cause)
    if all(candidate.id != next_id for candidate in workflow.tasks):
        what = "route" if via == "route" else f"{via}.next"
        message = (
            f'task "{task.id}" {what} names task "{next_id}", which workflow'
            f' "{workflow.id}" does not have (its definition changed?)'
        )
        return _failed(UNKNOWN_TASK, message, task, cause)
    return Decision(next_task=next_id, status=ExecutionStatus.RUNNING, cause=cause)


def _failed(kind: str, message: str, task: Task, cause: Mapping[str, JSON] | None) -> Decision:
    """An execution ending ``FAILED`` with ``kind``, keeping the step error that led here."""
    error: dict[str, JSON] = {"type": kind, "message": message, "task": task.id}
    if cause is not None:
        error["cause"] = dict(cause)
    return Decision(next_task=None, status=ExecutionStatus.FAILED, error=error)


def _step_error(task: Task, outcome: Outcome) -> Mapping[str, JSON]:
    """The failed step's error record, or a generic one when the outcome carries none."""
    if outcome.error is not None:
        return outcome.error
    return {"type": STEP_FAILED, "message": f'task "{task.id}" failed', "task": task.id}
