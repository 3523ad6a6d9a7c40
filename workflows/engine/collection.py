"""Collection steps: one child step per item of a list, joined into the list of results.

A ``collection`` step, once claimed, computes its list (a template or a CEL
expression on the step's data) and keeps the items its ``filter`` is true for.
An empty list succeeds at once with ``[]``. Otherwise the step becomes
``waiting``, records the items it kept as its input, and queues one child step
per item (task id ``<parent>[<index>]``, the item and its index on the row, where
the child's templates read them as ``item``/``index`` or the names given), at
most ``max_workers`` unfinished at once (``sequential``: one). Each finished
child is joined like a parallel step's (:mod:`workflows.engine.parallel`: the
execution's lock, then the parent's), counting statuses in one aggregate
query: the collection succeeds when every item has, with the outputs in item
order; it fails once every started item has finished and one failed
(``sequential``: at the first failure, starting no more).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from workflows.engine.attempt import Attempt
from workflows.engine.claim import Claim
from workflows.engine.messages import Message, Publish, run_message
from workflows.engine.progress import Settled, settle_claim
from workflows.errors import TemplateError
from workflows.expressions import Expression, ExpressionFailed
from workflows.model import Collection, StepStatus, Task
from workflows.store import steps as step_store
from workflows.store.models import Execution, Step
from workflows.templates import render

#: ``type`` of the step error when ``items`` is not a list or cannot be computed
ITEMS_ERROR = "items_error"
#: ``type`` of the step error when items failed
COLLECTION_FAILED = "collection_failed"
_FAILED = (StepStatus.FAILED.value, StepStatus.TIMED_OUT.value)


def start(session: Session, claim: Claim, *, now: datetime) -> Settled:
    """Compute the claimed collection's items; succeed at once, or queue the first items."""
    step, task = claim.step, claim.task
    collection = task.collection
    assert collection is not None
    kept = _items(task, collection, claim.context)
    if isinstance(kept, Attempt):  # the items could not be computed
        return settle_claim(session, claim, kept, now=now)
    if not kept:
        result = Attempt(ok=True, output=[], input={"items": [], "indexes": []})
        return settle_claim(session, claim, result, now=now)
    step.status, step.lease_until = StepStatus.WAITING.value, None
    step.input = {
        "items": [item for _, item in kept],
        "indexes": [index for index, _ in kept],
        "mode": collection.mode,
        "max_workers": collection.max_workers,
    }
    execution = session.get(Execution, step.execution_id)
    assert execution is not None
    return Settled(StepStatus.WAITING, _queue_more(session, execution, step, task, {}, now))


def join(
    session: Session, execution: Execution, parent: Step, task: Task, *, now: datetime
) -> Attempt | list[Message]:
    """An item finished: the collection's result, or the next items' messages."""
    collection = task.collection
    assert collection is not None
    counts = step_store.child_counts(session, parent.id)
    total = len(_kept(parent)[1])
    started = sum(counts.values())
    done = sum(n for status, n in counts.items() if StepStatus(status).finished)
    failed = sum(counts.get(status, 0) for status in _FAILED)
    if counts.get(StepStatus.SUCCEEDED.value, 0) == total:
        results = step_store.item_results(session, parent.id)
        return Attempt(ok=True, output=[output for _, _, output, _ in results])
    stop = failed and (collection.mode == "sequential" or started == total)
    if stop and done == started:
        return _failure(session, task, parent, total)
    if failed and collection.mode == "sequential":
        return []
    return list(_queue_more(session, execution, parent, task, counts, now))


def _queue_more(
    session: Session,
    execution: Execution,
    parent: Step,
    task: Task,
    counts: dict[str, int],
    now: datetime,
) -> list[Publish]:
    """Queue the next items, keeping at most the collection's limit unfinished."""
    collection = task.collection
    assert collection is not None
    items, indexes = _kept(parent)
    started = sum(counts.values())
    unfinished = sum(n for status, n in counts.items() if not StepStatus(status).finished)
    room = collection.limit(len(items)) - unfinished
    publish: list[Publish] = []
    for position in range(started, min(started + max(room, 0), len(items))):
        index = indexes[position]
        created = step_store.queue_step(
            session,
            execution,
            f"{task.id}[{index}]",
            now=now,
            parent_id=parent.id,
            item=items[position],
            item_index=index,
        )
        if created is not None:
            publish.append(run_message(created, collection.task))
    return publish


def _kept(parent: Step) -> tuple[list[Any], list[int]]:
    """The items a waiting collection kept, and their indexes (its input)."""
    kept: dict[str, Any] = parent.input or {}
    return list(kept.get("items", [])), list(kept.get("indexes", []))


def _items(task: Task, collection: Collection, context: dict[str, Any]) -> list[Any] | Attempt:
    """``[(index, item)]`` kept by the filter, or the step's error."""
    try:
        if isinstance(collection.items, Expression):
            value = collection.items.evaluate(context)
        else:
            value = render(collection.items, context)
    except (ExpressionFailed, TemplateError) as exc:
        return _error(task, f"items: {exc.message}")
    if not isinstance(value, list):
        return _error(task, f"items gave {type(value).__name__} {value!r:.80}, not a list")
    if collection.filter is None:
        return list(enumerate(value))
    kept: list[Any] = []
    for index, item in enumerate(value):
        scope = {**context, collection.item_var: item, collection.index_var: index}
        try:
            keep = collection.filter.evaluate(scope)
        except ExpressionFailed as exc:
            return _error(task, f"filter at index {index}: {exc.message}")
        if not isinstance(keep, bool):
            return _error(task, f"filter gave {keep!r} at index {index}, not true or false")
        if keep:
            kept.append((index, item))
    return kept


def _error(task: Task, message: str) -> Attempt:
    return Attempt(
        ok=False, error={"type": ITEMS_ERROR, "message": f"collection {task.id!r}: {message}"}
    )


def _failure(session: Session, task: Task, parent: Step, total: int) -> Attempt:
    failed = {
        index: error
        for index, status, _, error in step_store.item_results(session, parent.id)
        if status in _FAILED
    }
    message = (
        f"collection {task.id!r}: {len(failed)} of {total} item(s) failed "
        f"(indexes {', '.join(str(i) for i in sorted(failed)[:10])}"
        f"{', ...' if len(failed) > 10 else ''})"
    )
    error = {
        "type": COLLECTION_FAILED,
        "message": message,
        "failed": {str(i): e for i, e in failed.items()},
    }
    return Attempt(ok=False, error=error)
