"""Dispatching an accepted event: one execution per route, exactly once.

The API fixed the execution ids at accept time (``Event.routes``), so a
redelivered or duplicated dispatch message inserts nothing twice: executions
and first steps are inserted only if absent, under a lock on the event row.
Every first step still queued is returned to publish, so a redelivery after a
crash between commit and publish publishes again (a duplicate run message is
harmless: claiming a step is exclusive).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from workflows.engine.messages import Publish, due_message
from workflows.engine.progress import queue_visit
from workflows.model import EventStatus, ExecutionStatus, Project
from workflows.store import executions as store
from workflows.store import steps as step_store
from workflows.store.models import Event, Execution


@dataclass(frozen=True)
class Dispatched:
    """What dispatching an event did."""

    event_name: str
    execution_ids: list[str]
    #: executions created by this call (0 for a redelivery)
    created: int
    publish: list[Publish]
    #: routes whose workflow changed version since the event was accepted
    version_changes: list[dict[str, Any]] = field(default_factory=list)
    #: the workflow of each execution created by this call
    started: list[str] = field(default_factory=list)
    #: the event's W3C trace (None for an event stored before traces)
    trace_id: str | None = None


def create_executions(
    session: Session, project: Project, event_id: str, *, now: datetime
) -> Dispatched | None:
    """Create the event's executions and their first steps; None for an unknown event."""
    event = store.lock_event(session, event_id)
    if event is None:
        return None
    started: list[str] = []
    changes: list[dict[str, Any]] = []
    for route in event.routes:
        if _create_execution(session, project, event, route, now=now, changes=changes):
            started.append(route["workflow_id"])
    created = len(started)
    execution_ids = [route["execution_id"] for route in event.routes]
    publish: list[Publish] = []
    for step in step_store.queued_first_steps(session, execution_ids):
        execution = session.get(Execution, step.execution_id)
        assert execution is not None
        workflow = project.workflows[execution.workflow_id]
        task = workflow.task(step.task_id)
        message = due_message(
            step.id, task, not_before=step.not_before, now=now, workflow_id=workflow.id
        )
        publish.extend(message)
        if not created and message:
            step.publish_count += 1  # published again: a redelivery or the sweep
    if event.status == EventStatus.ACCEPTED.value:
        event.status = EventStatus.DISPATCHED.value
        event.dispatched_at = now
    return Dispatched(event.name, execution_ids, created, publish, changes, started, event.trace_id)


def _create_execution(
    session: Session,
    project: Project,
    event: Event,
    route: dict[str, Any],
    *,
    now: datetime,
    changes: list[dict[str, Any]],
) -> int:
    """Insert one route's execution (and its first step) unless it exists; 1 if created now."""
    execution_id, workflow_id = route["execution_id"], route["workflow_id"]
    workflow = project.workflows.get(workflow_id)
    values: dict[str, Any] = {
        "id": execution_id,
        "event_id": event.id,
        "workflow_id": workflow_id,
        "workflow_version": workflow.version if workflow is not None else route.get("version", ""),
        "input": event.payload,
        "step_count": 0,
        "trace_id": event.trace_id,
        "created_at": now,
    }
    if workflow is None:
        message = (
            f"workflow {workflow_id!r} (version {route.get('version', '')!r}) was routed when "
            "the event was accepted but is no longer defined"
        )
        values.update(
            status=ExecutionStatus.FAILED.value,
            error={"type": "workflow_missing", "message": message},
            finished_at=now,
        )
        return int(store.create_execution(session, values))
    values["status"] = ExecutionStatus.PENDING.value
    if not store.create_execution(session, values):
        return 0
    execution = store.lock_execution(session, execution_id)
    assert execution is not None
    queue_visit(session, execution, workflow.first_task, now=now)
    if route.get("version") not in (None, workflow.version):
        changes.append(
            {
                "execution_id": execution_id,
                "workflow_id": workflow_id,
                "routed_version": route.get("version"),
                "running_version": workflow.version,
            }
        )
    return 1
