"""The Celery task bodies: thin, each hands its id to the engine with this process's runtime.

Database trouble (the server restarting) is retried by Celery with backoff; if
that is not enough, the recovery sweep re-publishes what is still pending.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar, cast

from celery import Task, shared_task
from sqlalchemy.exc import OperationalError

from workers import dispatch, runtime, steps
from workers import sweep as recovery
from workers.celery_app import AGENT_STEP_TASK, DISPATCH_TASK, STEP_TASK, SWEEP_TASK
from workflows.errors import DatabaseUnavailable

F = TypeVar("F", bound=Callable[..., None])

_RETRY: dict[str, Any] = {
    "autoretry_for": (OperationalError, DatabaseUnavailable),
    "retry_backoff": 1,
    "retry_backoff_max": 30,
    "max_retries": 5,
}


def task(**options: Any) -> Callable[[F], F]:
    """``shared_task`` with its type kept (Celery's decorator is untyped)."""
    return cast(Callable[[F], F], shared_task(**options))


@task(name=DISPATCH_TASK, bind=True, **_RETRY)
def dispatch_event(self: Task, event_id: str) -> None:
    """Create an accepted event's executions and publish their first steps."""
    dispatch.dispatch_event(runtime.current(), event_id)


@task(name=STEP_TASK, bind=True, **_RETRY)
def run_step(self: Task, step_id: str) -> None:
    """Run one attempt of a tool step."""
    _run(self, step_id)


@task(name=AGENT_STEP_TASK, bind=True, **_RETRY)
def run_agent_step(self: Task, step_id: str) -> None:
    """Run one attempt of an agent step (same body, own queue: slow calls starve nothing)."""
    _run(self, step_id)


@task(name=SWEEP_TASK)
def sweep() -> None:
    """One recovery pass (workers also sweep on their own; this is for operators)."""
    recovery.sweep(runtime.current())


def _run(task: Task, step_id: str) -> None:
    request = task.request
    delivery = request.delivery_info or {}
    steps.run_step(
        runtime.current(),
        step_id,
        worker=f"{request.hostname or runtime.current().hostname}/{os.getpid()}",
        redelivered=bool(delivery.get("redelivered")),
    )
