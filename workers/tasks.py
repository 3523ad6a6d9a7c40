"""The Celery tasks and their bodies: each opens a transaction, calls the engine, publishes.

Every state change is the engine's (:mod:`workflows.engine`); a body here only
owns the transactions, runs the attempt outside them (a step's body is
:mod:`workers.steps`), and publishes what the engine returned after the
commit. Database trouble (the server restarting) is retried by Celery with
backoff; if that is not enough, the recovery sweep re-publishes what is still
pending.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from celery import Task, shared_task
from sqlalchemy.exc import OperationalError

from workers import metrics, runtime
from workers import sweep as recovery
from workers.celery_app import (
    AGENT_STEP_TASK,
    DISPATCH_BATCH_TASK,
    DISPATCH_TASK,
    STEP_TASK,
    SWEEP_TASK,
    TASK_HEADER,
    WORKFLOW_HEADER,
)
from workers.logs import log_event
from workers.publish import publish
from workers.runtime import Runtime
from workers.steps import run_step
from workflows import otel, tracing
from workflows.engine.dispatch import create_executions
from workflows.errors import DatabaseUnavailable
from workflows.store.models import utcnow

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
    dispatch(runtime.current(), event_id, traceparent=traceparent_of(self))


@task(name=DISPATCH_BATCH_TASK, bind=True, **_RETRY)
def dispatch_events(self: Task, event_ids: list[str]) -> None:
    """Dispatch the events of one batch, one after the other (each is idempotent)."""
    rt = runtime.current()
    parent = traceparent_of(self)
    for event_id in event_ids:
        dispatch(rt, event_id, traceparent=parent)


@task(name=STEP_TASK, bind=True, **_RETRY)
def run_step_task(self: Task, step_id: str) -> None:
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
    rt = runtime.current()
    run_step(
        rt,
        step_id,
        worker=f"{request.hostname or rt.hostname}/{os.getpid()}",
        redelivered=bool(delivery.get("redelivered")),
        message_id=request.id,
        traceparent=traceparent_of(task),
        workflow_id=header_of(task, WORKFLOW_HEADER),
        task_id=header_of(task, TASK_HEADER),
    )


def traceparent_of(task: Task) -> str | None:
    """The ``traceparent`` header of the message ``task`` runs (None without one)."""
    return header_of(task, tracing.HEADER)


def header_of(task: Task, name: str) -> str | None:
    """The header ``name`` of the message ``task`` runs (None without it)."""
    request = task.request
    value = getattr(request, name, None) or (request.headers or {}).get(name)
    return value if isinstance(value, str) else None


def dispatch(rt: Runtime, event_id: str, *, traceparent: str | None = None) -> list[str]:
    """Dispatch an accepted event and publish its first steps; returns the execution ids.

    It runs in a span of the event's trace, a child of ``traceparent`` when that
    names the same trace: its log lines and the messages it publishes carry it.
    """
    span = tracing.child_of(traceparent)
    with tracing.running(span), otel.exported(span, "herald.dispatch", event_id=event_id):
        return _dispatch(rt, event_id, span)


def _dispatch(rt: Runtime, event_id: str, span: tracing.Span) -> list[str]:
    started = time.monotonic()
    with rt.sessions.begin() as session:
        done = create_executions(session, rt.project, event_id, now=utcnow())
    if done is None:
        log_event("dispatch.dropped", event_id=event_id, reason="unknown event")
        return []
    if done.trace_id is not None and done.trace_id != span.trace_id:
        tracing.CURRENT.set(tracing.child_of(None, trace_id=done.trace_id))
    metrics.executions_started(done.started)
    publish(rt, done.publish)
    for change in done.version_changes:
        log_event("dispatch.version_changed", event_id=event_id, **change)
    log_event(
        "dispatch.finished",
        event_id=event_id,
        event_name=done.event_name,
        executions=done.execution_ids,
        executions_created=done.created,
        published=len(done.publish),
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    return done.execution_ids
