"""What one attempt at a step produced, in every way it can end, and its idempotency key.

The worker renders the task's ``with`` and runs the tool or agent; each way that
can end (an answer, a failure, a timeout, a ``with`` that does not render, a
worker lost too often) is built here, beside the :class:`Attempt` the engine settles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workflows.errors import StepFailed, StepTimedOut, TemplateError
from workflows.model import StepStatus, Task
from workflows.store.models import Step
from workflows.transitions import Outcome


@dataclass(frozen=True)
class Attempt:
    """What one attempt at a step produced."""

    ok: bool
    output: Any = None
    #: the error record (``{"type", "message", ...}``) when not ok
    error: dict[str, Any] | None = None
    #: whether another attempt may succeed
    retryable: bool = False
    #: StepStatus for a failure: ``failed`` or ``timed_out``
    failure_status: StepStatus = StepStatus.FAILED
    #: the rendered ``with`` (None when rendering failed)
    input: Any = None
    usage: dict[str, Any] = field(default_factory=dict)
    #: the task a router chose
    route: str | None = None

    @classmethod
    def succeeded(cls, output: Any, *, input: Any, usage: dict[str, Any]) -> Attempt:
        """The tool or agent answered ``output``."""
        return cls(ok=True, output=output, input=input, usage=usage)

    @classmethod
    def failed(cls, exc: StepFailed, *, input: Any, usage: dict[str, Any]) -> Attempt:
        """The tool or agent failed with ``exc``."""
        return cls(
            ok=False, input=input, error=exc.as_record(), retryable=exc.retryable, usage=usage
        )

    @classmethod
    def timed_out(
        cls, task: Task, *, input: Any, duration_ms: int, exc: StepTimedOut | None = None
    ) -> Attempt:
        """The attempt outlived the task's timeout and was stopped."""
        error = exc or StepTimedOut(
            f"task {task.id!r} outlived its timeout of {task.step_timeout:g}s"
        )
        return cls(
            ok=False,
            input=input,
            error=error.as_record(),
            retryable=True,
            failure_status=StepStatus.TIMED_OUT,
            usage={"duration_ms": duration_ms},
        )

    @classmethod
    def bad_input(cls, task: Task, exc: TemplateError) -> Attempt:
        """The task's ``with`` did not render: nothing ran."""
        error = {"type": "template_error", "message": f"task {task.id!r} with: {exc.message}"}
        return cls(ok=False, error=error)

    @classmethod
    def lost(cls, message: str, *, lost: int) -> Attempt:
        """The step's workers kept dying: it fails without another attempt."""
        return cls(ok=False, error={"type": "worker_lost", "message": message, "lost": lost})

    @property
    def outcome(self) -> Outcome:
        """The outcome the transition function decides on."""
        return Outcome(
            ok=self.ok, output=self.output if self.ok else None, error=self.error, route=self.route
        )


def idempotency_key(step: Step) -> str:
    """``<execution_id>:<task_id>:<visit>``: stable across attempts and redeliveries."""
    return f"{step.execution_id}:{step.task_id}:{step.visit}"
