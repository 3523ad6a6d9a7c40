"""The loaded workflow definitions, read-only: ``GET /api/v1/workflows[/<id>]``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from app.api.common import authorize, ok
from app.errors import NotFound
from app.state import state
from workflows.model import Task, Workflow

bp = Blueprint("workflows", __name__)


@bp.get("/workflows")
def list_workflows() -> Response:
    """Every loaded workflow, sorted by id."""
    authorize("workflows:read")
    workflows = state().definitions.project.workflows
    return ok({"workflows": [workflow_json(workflows[k]) for k in sorted(workflows)]})


@bp.get("/workflows/<workflow_id>")
def get_workflow(workflow_id: str) -> Response:
    """One workflow: its triggers with their schemas and its tasks with their transitions."""
    authorize("workflows:read")
    workflow = state().definitions.project.workflows.get(workflow_id)
    if workflow is None:
        raise NotFound(f"no workflow with id {workflow_id!r}", details={"workflow_id": workflow_id})
    return ok(workflow_json(workflow))


def workflow_json(workflow: Workflow) -> dict[str, Any]:
    """A workflow as the API shows it."""
    return {
        "id": workflow.id,
        "version": workflow.version,
        "description": workflow.description,
        "triggers": [
            {
                "type": t.type,
                "name": t.name,
                "schema": _plain(t.schema) if t.schema is not None else None,
            }
            for t in workflow.triggers
        ],
        "input_schema": _plain(workflow.input_schema) if workflow.input_schema else None,
        "tasks": [task_json(task) for task in workflow.tasks],
    }


def task_json(task: Task) -> dict[str, Any]:
    """A task with what it uses and where it goes next."""
    uses = task.tool.id if task.tool else task.agent.id if task.agent else None
    return {
        "id": task.id,
        "type": task.type,
        "uses": {"kind": task.uses, "id": uses},
        "action": task.action,
        "on_success": task.on_success,
        "on_error": task.on_error,
        "final": task.final,
    }


def _plain(value: Any) -> Any:
    """Read-only mappings and tuples of the model as plain JSON values."""
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
