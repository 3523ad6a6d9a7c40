"""Parallel steps: start the children, then join them, deciding the parent exactly once.

A ``parallel`` step, once claimed, becomes ``waiting`` and queues its children
(each a step row with ``parent_id``, task id ``<parent>.<child>``), at most
``max_workers`` running at once; they run as separate Celery tasks like any
step. Every child that finishes comes here (:func:`join`) in the transaction
that records it, with the execution locked first: two children finishing at the
same instant on two workers are serialised on that lock, and the second sees
what the first committed, so the parent is decided once. The strategy says when:

- ``wait_all``: when every child has finished; it succeeds if they all did.
- ``fail_fast``: at the first failure (the children not started are cancelled);
  else when all have succeeded.
- ``best_effort``: when every child has finished; it succeeds, failed children
  giving ``null`` outputs.
- ``race``: at the first success (the children not started are cancelled);
  it fails if every child failed.

The parent's output is the children's outputs by id (``race``: the winner's
only); its error, when it fails, names each failed child. A child that finishes
after its parent was decided is recorded and changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from workflows.engine.attempt import Attempt
from workflows.engine.claim import Claim
from workflows.engine.context import build_context
from workflows.engine.messages import Message, Publish
from workflows.engine.progress import Settled, advance, queue_visit
from workflows.model import Parallel, StepStatus, Task, Workflow
from workflows.store import executions as store
from workflows.store import steps as step_store
from workflows.store.models import Execution, Step

#: ``type`` of a parallel step's error when its children failed
PARALLEL_FAILED = "parallel_failed"
_FAILED = (StepStatus.FAILED.value, StepStatus.TIMED_OUT.value)


def start(session: Session, claim: Claim, *, now: datetime) -> Settled:
    """The claimed parallel step waits for its children; the first of them are queued."""
    step, task = claim.step, claim.task
    parallel = task.parallel
    assert parallel is not None
    execution = store.lock_execution(session, step.execution_id)
    assert execution is not None
    step.status, step.lease_until = StepStatus.WAITING.value, None
    step.input = {
        "strategy": parallel.strategy,
        "max_workers": parallel.max_workers,
        "tasks": [child.short_id for child in parallel.children],
    }
    return Settled(StepStatus.WAITING, _queue_more(session, execution, step, parallel, [], now))


def join(
    session: Session, execution: Execution, workflow: Workflow, parent_id: str, *, now: datetime
) -> list[Message]:
    """A child of ``parent_id`` has finished: decide the parent, or start more children.

    The caller holds the execution's lock; the parent's row is locked next.
    """
    parent = step_store.lock_step(session, parent_id)
    if parent is None or parent.status != StepStatus.WAITING.value:
        return []  # decided already (a race won, a failure under fail_fast) or cancelled
    task = workflow.find_task(parent.task_id)
    if task is not None and task.collection is not None:
        from workflows.engine import collection

        decided = collection.join(session, execution, parent, task, now=now)
        if isinstance(decided, list):
            return decided
        verdict: Attempt | None = decided
    elif task is not None and task.parallel is not None:
        children = step_store.children_of(session, parent.id)
        verdict = _verdict(task, task.parallel, children)
        if verdict is None:
            return list(_queue_more(session, execution, parent, task.parallel, children, now))
    else:
        return []  # the definitions changed under it; the claim of the next step will tell
    assert verdict is not None
    values: dict[str, Any] = {"status": verdict.failure_status.value, "finished_at": now}
    if verdict.ok:
        values["status"] = StepStatus.SUCCEEDED.value
    parent.status, parent.finished_at = values["status"], now
    parent.output, parent.error = verdict.output if verdict.ok else None, verdict.error
    step_store.cancel_children(session, parent.id, now=now)
    context = build_context(session, execution, workflow, parent)
    context["tasks"][task.id] = {
        "output": parent.output,
        "status": parent.status,
        "error": parent.error,
    }
    return advance(session, execution, workflow, task, verdict, context, now=now)


def republish_children(session: Session, workflow: Workflow, parent: Step) -> list[Publish]:
    """A waiting parent's message again (its worker died after commit): its queued children."""
    publish: list[Publish] = []
    for child in step_store.children_of(session, parent.id):
        task = workflow.find_task(child.task_id)
        if child.status == StepStatus.QUEUED.value and task is not None:
            child.publish_count += 1
            publish.append(Publish(child.id, task.uses, task.step_timeout))
    return publish


def _queue_more(
    session: Session,
    execution: Execution,
    parent: Step,
    parallel: Parallel,
    children: list[Step],
    now: datetime,
) -> list[Publish]:
    """Queue the children not started yet, keeping at most ``max_workers`` unfinished."""
    started = {child.task_id for child in children}
    unfinished = sum(not StepStatus(child.status).finished for child in children)
    limit = parallel.max_workers or len(parallel.children)
    publish: list[Publish] = []
    for child in parallel.children:
        if unfinished >= limit:
            break
        if child.id in started:
            continue
        publish += queue_visit(session, execution, child, now=now, parent_id=parent.id)
        unfinished += 1
    return publish


def _verdict(task: Task, parallel: Parallel, children: list[Step]) -> Attempt | None:
    """The parent's result if the strategy can decide now, else None."""
    done = [c for c in children if StepStatus(c.status).finished]
    ok = [c for c in done if c.status == StepStatus.SUCCEEDED.value]
    failed = [c for c in done if c.status in _FAILED]
    all_done = len(done) == len(parallel.children)
    short = {c.id: c.short_id for c in parallel.children}
    strategy = parallel.strategy
    if strategy == "race":
        if ok:
            winner = min(ok, key=lambda c: (c.finished_at is None, c.finished_at, c.seq))
            return Attempt(ok=True, output={short[winner.task_id]: winner.output})
        return _failure(task, parallel, failed, short) if all_done else None
    if strategy == "fail_fast" and failed:
        return _failure(task, parallel, failed, short)
    if not all_done:
        return None
    if failed and strategy != "best_effort":
        return _failure(task, parallel, failed, short)
    outputs = {c.task_id: c.output for c in ok}
    return Attempt(ok=True, output={short[t.id]: outputs.get(t.id) for t in parallel.children})


def _failure(task: Task, parallel: Parallel, failed: list[Step], short: dict[str, str]) -> Attempt:
    names = [short[c.task_id] for c in failed]
    message = (
        f"parallel {task.id!r} ({parallel.strategy}): {len(failed)} of "
        f"{len(parallel.children)} task(s) failed: {', '.join(names)}"
    )
    error = {
        "type": PARALLEL_FAILED,
        "message": message,
        "failed": {short[c.task_id]: c.error for c in failed},
    }
    return Attempt(ok=False, error=error)
