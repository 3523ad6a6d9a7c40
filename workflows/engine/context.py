"""What a step's templates see: the input, finished tasks, the cause, event and workflow."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from workflows.model import Workflow
from workflows.store import steps as step_store
from workflows.store.models import Event, Execution, Step


def build_context(
    session: Session,
    execution: Execution,
    workflow: Workflow,
    step: Step,
    *,
    event: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The template context of ``step``: ``input``, ``tasks``, ``error``, ``event``, ...

    ``event`` is the event's metadata when the caller has read it already.
    """
    if event is None:
        event = event_metadata(session, execution.event_id)
    results = step_store.task_results(session, execution.id)
    return assemble_context(execution.id, execution.input, results, event, workflow, step)


def assemble_context(
    execution_id: str,
    input: Any,
    results: dict[str, dict[str, Any]],
    event: dict[str, Any],
    workflow: Workflow,
    step: Step,
) -> dict[str, Any]:
    """:func:`build_context` from what was read already (the one-statement claim reads it all)."""
    context: dict[str, Any] = {
        "input": input,
        "tasks": results,
        "event": event,
        "workflow": {"id": workflow.id, "version": workflow.version},
        "execution": {"id": execution_id, "step": step.seq},
    }
    if step.cause is not None:
        context["error"] = step.cause
    if step.item_index is not None:  # a collection's item step: its item and index
        task = workflow.find_task(step.task_id)
        owner = workflow.find_task(task.parent) if task is not None and task.parent else None
        if owner is not None and owner.collection is not None:
            context[owner.collection.item_var] = step.item
            context[owner.collection.index_var] = step.item_index
    return context


def event_metadata(session: Session, event_id: str | None) -> dict[str, Any]:
    """``{"id", "name", "received_at"}`` of an event, ``{}`` without one."""
    found = session.get(Event, event_id) if event_id else None
    if found is None:
        return {}
    return {"id": found.id, "name": found.name, "received_at": found.received_at.isoformat()}
