"""Dispatching an accepted event: one execution per route, exactly once, then publish.

The API fixed the execution ids at accept time (``Event.routes``), so a
redelivered or duplicated dispatch message inserts nothing twice: executions
and first steps are inserted only if absent, under a lock on the event row.
Publishing happens after commit, for every first step still queued, so a
redelivery after a crash between commit and publish publishes again (a
duplicate run message is harmless: claiming a step is exclusive).
"""

from __future__ import annotations

import time
from typing import Any

from workers.logs import log_event
from workers.progress import Publish, publish_for
from workers.runtime import Runtime
from workers.steps import publish_messages
from workflows.model import EventStatus, ExecutionStatus
from workflows.store import executions as store
from workflows.store import steps as step_store
from workflows.store.models import Event, Execution, utcnow


def dispatch_event(rt: Runtime, event_id: str) -> list[str]:
    """Create the event's executions and publish their first steps; returns the execution ids."""
    started = time.monotonic()
    now = utcnow()
    with rt.sessions.begin() as session:
        event = store.lock_event(session, event_id)
        if event is None:
            log_event("dispatch.dropped", event_id=event_id, reason="unknown event")
            return []
        created = 0
        for route in event.routes:
            created += _create_execution(rt, session, event, route, now=now)
        execution_ids = [route["execution_id"] for route in event.routes]
        publish: list[Publish] = []
        for step in step_store.queued_first_steps(session, execution_ids):
            execution = session.get(Execution, step.execution_id)
            assert execution is not None
            workflow = rt.project.workflows[execution.workflow_id]
            publish.append(publish_for(step, workflow.task(step.task_id)))
            if not created:
                step.publish_count += 1  # published again: a redelivery or the sweep
        if event.status == EventStatus.ACCEPTED.value:
            event.status = EventStatus.DISPATCHED.value
            event.dispatched_at = now
    publish_messages(rt, publish)
    log_event(
        "dispatch.finished",
        event_id=event_id,
        event_name=event.name,
        executions=execution_ids,
        executions_created=created,
        published=len(publish),
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    return execution_ids


def _create_execution(
    rt: Runtime, session: Any, event: Event, route: dict[str, Any], *, now: Any
) -> int:
    """Insert one route's execution (and its first step) unless it exists; 1 if created now."""
    execution_id, workflow_id = route["execution_id"], route["workflow_id"]
    workflow = rt.project.workflows.get(workflow_id)
    values: dict[str, Any] = {
        "id": execution_id,
        "event_id": event.id,
        "workflow_id": workflow_id,
        "workflow_version": workflow.version if workflow is not None else route.get("version", ""),
        "input": event.payload,
        "step_count": 0,
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
    step_store.queue_step(session, execution, workflow.first_task.id, now=now)
    if route.get("version") not in (None, workflow.version):
        log_event(
            "dispatch.version_changed",
            event_id=event.id,
            execution_id=execution_id,
            workflow_id=workflow_id,
            routed_version=route.get("version"),
            running_version=workflow.version,
        )
    return 1
