"""One attempt at a claimed step, outside any transaction: render its ``with``, run it.

:func:`execute` turns whatever happens (output, tool or agent error, template
error, timeout) into an :class:`~workflows.engine.attempt.Attempt` for the engine
to settle.
"""

from __future__ import annotations

import time
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from workers.tools import ToolContext, run_tool
from workflows.engine.attempt import Attempt, idempotency_key
from workflows.engine.claim import Claim
from workflows.errors import StepFailed, StepTimedOut, TemplateError
from workflows.templates import render


def execute(claim: Claim) -> Attempt:
    """Render the task's ``with`` and run its tool or agent, outside any transaction."""
    started = time.monotonic()
    task, step = claim.task, claim.step
    try:
        value = render(dict(task.with_), claim.context)
    except TemplateError as exc:
        return Attempt.bad_input(task, exc)
    except SoftTimeLimitExceeded:
        return Attempt.timed_out(task, input=None, duration_ms=_ms(started))
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
            output = run_tool(task.tool, value, context, timeout=task.step_timeout)
    except StepTimedOut as exc:
        return Attempt.timed_out(task, input=value, duration_ms=_ms(started), exc=exc)
    except SoftTimeLimitExceeded:
        return Attempt.timed_out(task, input=value, duration_ms=_ms(started))
    except StepFailed as exc:
        return Attempt.failed(exc, input=value, usage={**usage, "duration_ms": _ms(started)})
    return Attempt.succeeded(output, input=value, usage={**usage, "duration_ms": _ms(started)})


def _run_agent(claim: Claim, value: Any) -> tuple[Any, dict[str, Any]]:
    from workers.agents import run_agent

    task = claim.task
    assert task.agent is not None
    result = run_agent(
        task.agent,
        task.action or "default",
        value,
        idempotency_key=idempotency_key(claim.step),
        timeout=task.step_timeout,
    )
    usage = result.usage if isinstance(result.usage, dict) else {"usage": result.usage}
    return result.output, dict(usage)


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
