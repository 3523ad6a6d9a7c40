"""One attempt at a claimed step, outside any transaction: render its ``with``, run it.

:func:`execute` turns whatever happens (output, tool or agent error, template
error, timeout) into an :class:`~workers.progress.Attempt` for the record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from workers.progress import Attempt, step_timeout
from workers.tools import ToolContext, run_tool
from workflows.errors import StepFailed, StepTimedOut, TemplateError
from workflows.model import StepStatus, Task, Workflow
from workflows.store.models import Step
from workflows.templates import render


@dataclass(frozen=True)
class Claim:
    """A step claimed for one attempt, with everything its run needs."""

    step: Step
    attempt: int
    workflow: Workflow
    task: Task
    context: dict[str, Any]
    event_id: str | None


def execute(claim: Claim) -> Attempt:
    """Render the task's ``with`` and run its tool or agent, outside any transaction."""
    started = time.monotonic()
    task, step = claim.task, claim.step
    try:
        value = render(dict(task.with_), claim.context)
    except TemplateError as exc:
        error = {"type": "template_error", "message": f"task {task.id!r} with: {exc.message}"}
        return Attempt(ok=False, error=error)
    except SoftTimeLimitExceeded:
        return _timed_out(task, None, started)
    usage: dict[str, Any] = {}
    try:
        if task.uses == "agent":
            output, usage = _run_agent(claim, value)
        else:
            assert task.tool is not None
            context = ToolContext(
                idempotency_key=idempotency_key(step),
                execution_id=step.execution_id,
                task_id=task.id,
                visit=step.visit,
                attempt=claim.attempt,
            )
            output = run_tool(task.tool, value, context, timeout=step_timeout(task))
    except StepTimedOut as exc:
        return _timed_out(task, value, started, exc)
    except SoftTimeLimitExceeded:
        return _timed_out(task, value, started)
    except StepFailed as exc:
        return Attempt(
            ok=False,
            input=value,
            error=exc.as_record(),
            retryable=exc.retryable,
            usage={**usage, "duration_ms": _ms(started)},
        )
    return Attempt(
        ok=True, output=output, input=value, usage={**usage, "duration_ms": _ms(started)}
    )


def _run_agent(claim: Claim, value: Any) -> tuple[Any, dict[str, Any]]:
    from workers.agents import run_agent

    task = claim.task
    assert task.agent is not None
    result = run_agent(
        task.agent,
        task.action or "default",
        value,
        idempotency_key=idempotency_key(claim.step),
        timeout=step_timeout(task),
    )
    usage = result.usage if isinstance(result.usage, dict) else {"usage": result.usage}
    return result.output, dict(usage)


def _timed_out(task: Task, value: Any, started: float, exc: StepTimedOut | None = None) -> Attempt:
    error = (
        exc or StepTimedOut(f"task {task.id!r} outlived its timeout of {step_timeout(task):g}s")
    ).as_record()
    return Attempt(
        ok=False,
        input=value,
        error=error,
        retryable=True,
        failure_status=StepStatus.TIMED_OUT,
        usage={"duration_ms": _ms(started)},
    )


def idempotency_key(step: Step) -> str:
    """``<execution_id>:<task_id>:<visit>``: stable across attempts and redeliveries."""
    return f"{step.execution_id}:{step.task_id}:{step.visit}"


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
