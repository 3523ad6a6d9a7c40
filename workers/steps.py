"""A step's run, in a worker: claim, one attempt, settle, publish what follows.

Every state change is the engine's (:mod:`workflows.engine`); this body owns the
transactions, runs the attempt outside them, and publishes what the engine
returned after the commit. A plain step (a tool or agent of a linear chain,
on PostgreSQL) is claimed and settled in one statement each
(:mod:`workflows.engine.steppath`); everything else, and every case those
statements do not match, takes the general claim and settle in a transaction.
"""

from __future__ import annotations

import logging
import time

from workers import metrics
from workers.attempts import execute
from workers.logs import log_event
from workers.publish import publish
from workers.runtime import Runtime
from workflows import otel, tracing
from workflows.engine import steppath
from workflows.engine.attempt import Attempt
from workflows.engine.claim import Claim, Claimed, ClaimOutcome, claim
from workflows.engine.flow import settle_alone
from workflows.engine.progress import Settled, settle_claim
from workflows.metrics import executions_finished
from workflows.model import StepStatus
from workflows.store import db
from workflows.store.executions import finished_in
from workflows.store.models import utcnow


def run_step(
    rt: Runtime,
    step_id: str,
    *,
    worker: str,
    redelivered: bool = False,
    message_id: str | None = None,
    traceparent: str | None = None,
    workflow_id: str | None = None,
    task_id: str | None = None,
) -> str:
    """Claim a step, run one attempt, settle it, publish what follows; returns its status.

    ``redelivered`` is the broker's flag: the message ``message_id`` was handed
    back after its worker died, so a step it left ``running`` is reclaimed
    (``lost`` + 1). The claim records this process's worker row (``rt.worker_id``).
    The step runs in a span of its execution's trace (a child of ``traceparent``
    when that names the same trace): its logs and messages carry it.
    ``workflow_id`` and ``task_id`` are what the message says the step is: with
    them, a plain step is claimed and settled in one statement each
    (:mod:`workflows.engine.steppath`), every other case as before.
    """
    span = tracing.child_of(traceparent)
    with tracing.running(span), otel.exported(span, "herald.step", step_id=step_id):
        said = (workflow_id, task_id)
        return _run_step(rt, step_id, span, worker, redelivered, message_id, said)


def _run_step(
    rt: Runtime,
    step_id: str,
    span: tracing.Span,
    worker: str,
    redelivered: bool,
    message_id: str | None,
    said: tuple[str | None, str | None],
) -> str:
    started = time.monotonic()
    finished: str | None = None  # the status of the execution this attempt ended
    alone: Settled | None = None
    taken = None if redelivered else _claim_fast(rt, step_id, worker, message_id, said)
    short = taken is not None  # the claim, then the settle, were one statement each
    if taken is None:
        claimed, alone, ended = _claim(rt, step_id, worker, redelivered, message_id)
        if claimed.claim is None:
            return _not_claimed(rt, step_id, claimed, ended)
        finished = _status(ended)
        taken = claimed.claim
    if taken.trace_id is not None and taken.trace_id != span.trace_id:
        # published without this trace (the sweep, an operator's retry): the execution's wins
        tracing.CURRENT.set(tracing.child_of(None, trace_id=taken.trace_id))
    if alone is not None:
        settled, error = alone, alone.error
    else:
        result = execute(taken)
        error = result.error
        settled, finished, settled_fast = settle_attempt(rt, taken, result)
        short = short and settled_fast
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
        path="steppath" if short else "general",
    )
    return settled.status.value


def _claim_fast(
    rt: Runtime,
    step_id: str,
    worker: str,
    message_id: str | None,
    said: tuple[str | None, str | None],
) -> Claim | None:
    """The one-statement claim of a plain step, committed; None: take the general claim."""
    workflow_id, task_id = said
    if not steppath.available(rt.engine) or steppath.simple(rt.project, *said) is None:
        return None
    with db.autocommit(rt.engine) as connection:
        return steppath.claim(
            connection,
            rt.project,
            step_id,
            workflow_id=workflow_id,
            task_id=task_id,
            worker=worker,
            now=utcnow(),
            worker_id=rt.worker_id,
            message_id=message_id,
        )


def _claim(
    rt: Runtime, step_id: str, worker: str, redelivered: bool, message_id: str | None
) -> tuple[Claimed, Settled | None, list[tuple[str, str]]]:
    """The general claim, in a transaction; with a router's settle and what they finished."""
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
        alone = None
        if taken is not None and taken.task.settles_alone:
            alone = settle_alone(session, rt.project, taken, now=utcnow())
        return claimed, alone, finished_in(session)


def _not_claimed(rt: Runtime, step_id: str, claimed: Claimed, ended: list[tuple[str, str]]) -> str:
    """Count what the claim finished (giving up on a step lost too often fails its
    execution, and no attempt settles to count it), publish what it found to publish,
    and log the drop."""
    executions_finished(ended)
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


def settle_attempt(rt: Runtime, taken: Claim, result: Attempt) -> tuple[Settled, str | None, bool]:
    """Settle the attempt (one statement for a plain step, else the general settle, committed).

    Returns the settle, the status of the execution it finished (if it did),
    and whether it was the one statement.
    """
    if steppath.available(rt.engine):
        with db.autocommit(rt.engine) as connection:
            fast = steppath.settle(connection, taken, result, now=utcnow())
        if fast is not None:
            return *fast, True
    with rt.sessions.begin() as session:
        now = utcnow()
        settled = settle_claim(session, taken, result, now=now)
        return settled, _status(finished_in(session)), False


def _status(ended: list[tuple[str, str]]) -> str | None:
    """The status of the execution a step's transaction finished (its own), if it did."""
    return ended[0][1] if ended else None


def _outcome(settled: Settled) -> str:
    """The ``outcome`` label of a settled attempt."""
    if settled.fenced:
        return "fenced"
    if settled.status is StepStatus.RETRYING:
        return "retried"
    return settled.status.value
