"""Replaying an event: its subscribed workflows start again, as new executions.

A *delivery* is an (event, workflow) pair; its current execution is the one no
replay has superseded. ``mode="all"`` starts every workflow given anew;
``mode="failed"`` only those whose current execution failed or was cancelled (a
workflow that succeeded, is still running, or never ran for the event is
skipped, and the answer says why). Each new execution supersedes the current
one (``superseded_by``), and the replay is recorded (:class:`Replay`: who, when,
what it started).

Under each current execution's lock, then the event's: a concurrent retry of an
execution (:func:`~workflows.engine.control.resume`, which locks it too) either
committed first, and the execution is running again, so a ``failed`` replay
skips it, or comes second and finds it superseded, and refuses. Nothing is
published here: the run messages of the new first steps are returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflows import tracing
from workflows.engine.messages import Publish, run_message
from workflows.errors import ExecutionConflict
from workflows.ids import new_id
from workflows.model import EventStatus, ExecutionStatus, Project
from workflows.store import executions as store
from workflows.store import steps as step_store
from workflows.store.models import Event, Execution, Replay

Mode = Literal["all", "failed"]
MODES: tuple[Mode, ...] = ("all", "failed")
#: a current execution in one of these may be replayed with ``mode="failed"``
NOT_SUCCEEDED = (ExecutionStatus.FAILED.value, ExecutionStatus.CANCELLED.value)


@dataclass(frozen=True)
class Replayed:
    """What a replay started (or, previewed, would start) and what it skipped, and why."""

    event_id: str
    mode: Mode
    #: None for a preview
    replay_id: str | None
    #: [{"workflow_id", "execution_id" (None in a preview), "replaces"}]
    started: list[dict[str, Any]]
    #: [{"workflow_id", "execution_id", "status", "reason"}]
    skipped: list[dict[str, Any]]
    publish: list[Publish] = field(default_factory=list)


def replay(
    session: Session,
    project: Project,
    event: Event,
    workflow_ids: Sequence[str],
    *,
    mode: Mode,
    token_name: str,
    request_id: str | None,
    now: datetime,
    preview: bool = False,
) -> Replayed:
    """Start ``workflow_ids`` (those subscribed to the event now) again for ``event``.

    Raises :class:`ExecutionConflict` for an event not dispatched yet (its planned
    executions do not exist: replaying now would run them twice).
    """
    if not preview:
        # executions first, then the event: the order a retry takes them in (it locks its
        # execution, and its update takes the event's key lock), so the two never deadlock
        _current(session, event.id, lock=True)
        locked = store.lock_event(session, event.id)
        assert locked is not None, "the event vanished"
        event = locked
    if event.status == EventStatus.ACCEPTED.value:
        raise ExecutionConflict(
            f"event {event.id!r} has not been dispatched yet; replay it once its executions exist",
            details={"event_id": event.id, "status": event.status},
        )
    current = _current(session, event.id, lock=not preview)  # again: a replay may have won
    replay_id = None if preview else new_id("rpl")
    started: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    publish: list[Publish] = []
    for workflow_id in sorted(set(workflow_ids)):
        execution = current.get(workflow_id)
        reason = _skip_reason(mode, execution)
        if reason is not None:
            skipped.append(
                {
                    "workflow_id": workflow_id,
                    "execution_id": execution.id if execution else None,
                    "status": execution.status if execution else None,
                    "reason": reason,
                }
            )
            continue
        replaces = execution.id if execution else None
        if preview:
            started.append({"workflow_id": workflow_id, "execution_id": None, "replaces": replaces})
            continue
        assert replay_id is not None
        message, new_execution = _start(session, project, event, workflow_id, replay_id, now)
        if execution is not None:
            execution.superseded_by = new_execution
        started.append(
            {"workflow_id": workflow_id, "execution_id": new_execution, "replaces": replaces}
        )
        publish.append(message)
    if not preview:
        assert replay_id is not None
        session.add(
            Replay(
                id=replay_id,
                event_id=event.id,
                mode=mode,
                token_name=token_name,
                request_id=request_id,
                at=now,
                executions=started,
            )
        )
    return Replayed(event.id, mode, replay_id, started, skipped, publish)


def _current(session: Session, event_id: str, *, lock: bool) -> dict[str, Execution]:
    """The current (not superseded) execution of each workflow for the event, locked."""
    query = select(Execution).where(
        Execution.event_id == event_id, Execution.superseded_by.is_(None)
    )
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    found: dict[str, Execution] = {}
    for execution in session.scalars(query.order_by(Execution.id)):
        found[execution.workflow_id] = execution  # ids sort by creation: the latest wins
    return found


def _skip_reason(mode: Mode, execution: Execution | None) -> str | None:
    if mode == "all":
        return None
    if execution is None:
        return "it never ran for this event (mode `failed` replays what failed or was cancelled)"
    if execution.status in NOT_SUCCEEDED:
        return None
    return f"its current execution {execution.id} is {execution.status}"


def _start(
    session: Session,
    project: Project,
    event: Event,
    workflow_id: str,
    replay_id: str,
    now: datetime,
) -> tuple[Publish, str]:
    """A new execution of ``workflow_id`` on the event's payload, with its first step queued."""
    workflow = project.workflows.get(workflow_id)
    if workflow is None:
        raise ExecutionConflict(
            f"workflow {workflow_id!r} is not defined; it cannot be replayed",
            details={"workflow_id": workflow_id},
        )
    execution_id = new_id("exe")
    store.create_execution(
        session,
        {
            "id": execution_id,
            "event_id": event.id,
            "workflow_id": workflow_id,
            "workflow_version": workflow.version,
            "status": ExecutionStatus.PENDING.value,
            "input": event.payload,
            "step_count": 0,
            "replay_id": replay_id,
            # the replay request's trace (a new one when it sent none): see docs/engine.md
            "trace_id": tracing.current_trace_id() or event.trace_id,
            "created_at": now,
        },
    )
    execution = store.lock_execution(session, execution_id)
    assert execution is not None
    step_id = step_store.queue_step(session, execution, workflow.first_task.id, now=now)
    assert step_id is not None, "a new execution has no step yet"
    return run_message(step_id, workflow.first_task, workflow_id=workflow.id), execution_id
