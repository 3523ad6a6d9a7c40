"""The Celery tasks and their bodies: each opens a transaction, calls the engine, publishes.

Every state change is the engine's (:mod:`workflows.engine`); a body here only
owns the transactions, runs the attempt outside them, and publishes what the
engine returned after the commit. Database trouble (the server restarting) is
retried by Celery with backoff; if that is not enough, the recovery sweep
re-publishes what is still pending.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar, cast

from celery import Task, shared_task
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from workers import metrics, runtime
from workers import sweep as recovery
from workers.attempts import execute
from workers.celery_app import (
    AGENT_STEP_TASK,
    DISPATCH_BATCH_TASK,
    DISPATCH_TASK,
    STEP_TASK,
    SWEEP_TASK,
)
from workers.logs import log_event
from workers.publish import publish
from workers.runtime import Runtime
from workflows import otel, tracing
from workflows.engine.claim import ClaimOutcome, claim
from workflows.engine.dispatch import create_executions
from workflows.engine.flow import settle_alone
from workflows.engine.progress import Settled, settle
from workflows.errors import DatabaseUnavailable
from workflows.model import StepStatus
from workflows.store.models import Execution, utcnow

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
    )


def traceparent_of(task: Task) -> str | None:
    """The ``traceparent`` header of the message ``task`` runs (None without one)."""
    request = task.request
    value = getattr(request, tracing.HEADER, None) or (request.headers or {}).get(tracing.HEADER)
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


def run_step(
    rt: Runtime,
    step_id: str,
    *,
    worker: str,
    redelivered: bool = False,
    message_id: str | None = None,
    traceparent: str | None = None,
) -> str:
    """Claim a step, run one attempt, settle it, publish what follows; returns its status.

    ``redelivered`` is the broker's flag: the message ``message_id`` was handed
    back after its worker died, so a step it left ``running`` is reclaimed
    (``lost`` + 1). The claim records this process's worker row (``rt.worker_id``).
    The step runs in a span of its execution's trace (a child of ``traceparent``
    when that names the same trace): its logs and messages carry it.
    """
    span = tracing.child_of(traceparent)
    with tracing.running(span), otel.exported(span, "herald.step", step_id=step_id):
        return _run_step(rt, step_id, span, worker, redelivered, message_id)


def _run_step(
    rt: Runtime,
    step_id: str,
    span: tracing.Span,
    worker: str,
    redelivered: bool,
    message_id: str | None,
) -> str:
    started = time.monotonic()
    finished: str | None = None  # the status of the execution this attempt ended
    with rt.sessions.begin() as session:
        claimed = claim(
            session,
            rt.project,
            step_id,
            worker=worker,
            redelivered=redelivered,
            redelivery_cap=rt.settings.redelivery_cap,
            now=utcnow(),
            worker_id=rt.worker_id,
            message_id=message_id,
        )
        taken = claimed.claim
        # a router (a task that runs nothing) is settled in the claim's own transaction
        now = utcnow()
        alone = (
            settle_alone(session, rt.project, taken, now=now)
            if taken and taken.task.settles_alone
            else None
        )
        if alone is not None and taken is not None:
            finished = _ended(session, taken.step.execution_id, now)
    if claimed.claim is None:
        publish(rt, claimed.publish)
        if claimed.outcome is not ClaimOutcome.FAILED:
            step = claimed.step
            log_event(
                "step.dropped",
                level=logging.WARNING if step is None else logging.INFO,
                step_id=step_id,
                execution_id=step.execution_id if step is not None else None,
                task_id=step.task_id if step is not None else None,
                reason=claimed.reason,
            )
        return claimed.outcome.value
    taken = claimed.claim
    if taken.trace_id is not None and taken.trace_id != span.trace_id:
        # published without this trace (the sweep, an operator's retry): the execution's wins
        tracing.CURRENT.set(tracing.child_of(None, trace_id=taken.trace_id))
    if alone is not None:
        settled, error = alone, alone.error
    else:
        result = execute(taken)
        error = result.error
        with rt.sessions.begin() as session:
            now = utcnow()
            settled = settle(
                session,
                step=taken.step,
                attempt=taken.attempt,
                workflow=taken.workflow,
                task=taken.task,
                result=result,
                context=taken.context,
                now=now,
            )
            finished = _ended(session, taken.step.execution_id, now)
    metrics.step_settled(
        taken.workflow.id,
        taken.task.id,
        _outcome(settled),
        time.monotonic() - started,
        None if settled.fenced else finished,
    )
    publish(rt, settled.publish)
    log_event(
        "step.finished",
        level=logging.INFO if error is None else logging.WARNING,
        event_id=taken.event_id,
        execution_id=taken.step.execution_id,
        step_id=taken.step.id,
        task_id=taken.task.id,
        visit=taken.step.visit,
        attempt=taken.attempt,
        status=settled.status.value,
        duration_ms=round((time.monotonic() - started) * 1000),
        error=(error or {}).get("message"),
        fenced=settled.fenced,
    )
    return settled.status.value


def _ended(session: Session, execution_id: str, now: datetime) -> str | None:
    """The execution's status if this transaction finished it (at ``now``), else ``None``.

    Read before the commit from the session's own copy, which the settle locked
    and wrote: no query.
    """
    execution = session.get(Execution, execution_id)
    if execution is None or execution.finished_at != now:
        return None
    return str(execution.status)


def _outcome(settled: Settled) -> str:
    """The ``outcome`` label of a settled attempt."""
    if settled.fenced:
        return "fenced"
    if settled.status is StepStatus.RETRYING:
        return "retried"
    return settled.status.value
