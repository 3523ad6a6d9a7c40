"""Executions: read them with their steps, cancel them, retry a failed one.

``GET /api/v1/executions/<id>`` shows every step (its task's type, status,
attempts, input, output, error, timings, worker, usage); ``GET /api/v1/executions`` lists them
newest first with filters and the events list's cursor pagination.
``POST .../cancel`` stops a pending or running execution (steps not yet started
are cancelled; a running one finishes but starts nothing). ``POST .../retry``
resumes a failed execution from its failed step: a new visit of that task,
published after commit (the recovery sweep publishes it if the broker is down).

A token sees and acts on the executions its own events started, unless it holds
``executions:read:all``; an execution it may not see is "not found" (404) to it,
as one that does not exist, so that ids tell nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, Response, g, request

from app.api.common import authorize, choice_param, iso, ok, page, page_params
from app.auth import visibility
from app.errors import Conflict, NotFound, ValidationFailed
from app.logs import log_event
from app.state import state
from workflows.engine import control
from workflows.errors import ExecutionConflict, UnknownExecution
from workflows.metrics import executions_finished
from workflows.model import ExecutionStatus
from workflows.settings import ApiToken
from workflows.store import executions as store
from workflows.store import steps as step_store
from workflows.store.models import Execution, Step, utcnow

bp = Blueprint("executions", __name__)


@bp.get("/executions/<execution_id>")
def get_execution(execution_id: str) -> Response:
    """One execution with its steps."""
    seen = visibility(authorize("executions:read"), "executions")
    execution_id = _id(execution_id)
    with state().sessions() as session:
        execution = session.get(Execution, execution_id)
        if execution is None:
            # accepted, not dispatched yet: shown pending rather than "not found"
            execution = store.planned_execution(session, execution_id)
            if execution is None:
                raise _not_found(execution_id)
        if not seen.allows_execution(session, execution):
            raise _not_found(execution_id)
        steps = step_store.steps_of(session, execution_id)
    return ok(execution_json(execution, steps))


@bp.get("/executions")
def list_executions() -> Response:
    """Executions newest first, filtered by workflow, status and event; cursor-paginated."""
    seen = visibility(authorize("executions:read"), "executions")
    limit, before_id = page_params()
    status = choice_param("status", [s.value for s in ExecutionStatus])
    with state().sessions() as session:
        rows = store.list_executions(
            session,
            workflow=_text_param("workflow_id"),
            status=status,
            event=_text_param("event_id"),
            after=before_id,
            limit=limit + 1,
            visible=seen.executions_clause(),
        )
    kept, next_cursor = page(rows, limit, key=lambda e: e.id)
    return ok({"executions": [execution_json(e) for e in kept], "next_cursor": next_cursor})


@bp.post("/executions/<execution_id>/cancel")
def cancel_execution(execution_id: str) -> Response:
    """Cancel a pending or running execution; 409 when it has already finished."""
    token = authorize("executions:write")
    execution_id = _id(execution_id)
    _require_visible(token, execution_id)
    with state().sessions.begin() as session, _engine_errors():
        execution = control.cancel(session, execution_id, now=utcnow())
        steps = step_store.steps_of(session, execution_id)
        finished = store.finished_in(session)
    executions_finished(finished)
    log_event(
        "execution.cancelled",
        execution_id=execution_id,
        token_name=token.name,
        request_id=g.request_id,
    )
    return ok(execution_json(execution, steps))


@bp.post("/executions/<execution_id>/retry")
def retry_execution(execution_id: str) -> Response:
    """Resume a failed execution from its failed step; 409 unless it failed at a step.

    The new step is published after commit; if the broker is down the recovery
    sweep publishes it.
    """
    token = authorize("executions:write")
    execution_id = _id(execution_id)
    _require_visible(token, execution_id)
    st = state()
    with st.sessions.begin() as session, _engine_errors():
        execution, message = control.resume(
            session, st.definitions.project, execution_id, now=utcnow()
        )
        steps = step_store.steps_of(session, execution_id)
    st.publisher.step(message, request_id=g.request_id)
    step = next(s for s in steps if s.id == message.step_id)
    log_event(
        "execution.retried",
        execution_id=execution_id,
        step_id=step.id,
        task_id=step.task_id,
        visit=step.visit,
        token_name=token.name,
        request_id=g.request_id,
    )
    return ok(execution_json(execution, steps), status=202)


def _require_visible(token: ApiToken, execution_id: str) -> None:
    """404 unless ``token`` may act on the execution (an unknown one is left to the caller).

    Checked before the change, in a read of its own: which event started an
    execution, and which token sent that event, never change.
    """
    seen = visibility(token, "executions")
    if seen.everything:
        return
    with state().sessions() as session:
        execution = session.get(Execution, execution_id) or store.planned_execution(
            session, execution_id
        )
        if execution is not None and not seen.allows_execution(session, execution):
            raise _not_found(execution_id)


@contextmanager
def _engine_errors() -> Iterator[None]:
    """The engine's refusals as API errors: an unknown id is a 404, a wrong state a 409."""
    try:
        yield
    except UnknownExecution as exc:
        raise NotFound(exc.message, details=exc.details) from None
    except ExecutionConflict as exc:
        raise Conflict(exc.message, details=exc.details) from None


def _not_found(execution_id: str) -> NotFound:
    return NotFound(
        f"no execution with id {execution_id!r}", details={"execution_id": execution_id}
    )


def _text_param(name: str) -> str | None:
    """A free-text query parameter; one the database cannot hold (NUL, too long) is a 400."""
    raw = request.args.get(name)
    if raw is not None and ("\x00" in raw or len(raw) > 255):
        raise ValidationFailed(
            f"`{name}` must be at most 255 characters, without NUL", details={"field": name}
        )
    return raw


def _id(execution_id: str) -> str:
    """An execution id from the path; one that cannot exist (NUL, too long) is simply unknown."""
    if "\x00" in execution_id or len(execution_id) > 40:
        raise _not_found(execution_id.replace("\x00", "\\0")[:60])
    return execution_id


def execution_json(execution: Execution, steps: list[Step] | None = None) -> dict[str, Any]:
    """An execution as the API shows it; with ``steps``, each of its steps (and its type)."""
    shown: dict[str, Any] = {
        "id": execution.id,
        "event_id": execution.event_id,
        "workflow_id": execution.workflow_id,
        "workflow_version": execution.workflow_version,
        "status": execution.status,
        "input": execution.input,
        "output": execution.output,
        "error": execution.error,
        "step_count": execution.step_count,
        "trace_id": execution.trace_id,
        "created_at": iso(execution.created_at),
        "started_at": iso(execution.started_at),
        "finished_at": iso(execution.finished_at),
    }
    if steps is not None:
        types = _task_types(execution.workflow_id)
        shown["steps"] = [step_json(step, _type_of(types, step.task_id)) for step in steps]
    return shown


def _task_types(workflow_id: str) -> dict[str, str]:
    """``{task id: type}`` of the workflow as loaded now (a task since removed has none)."""
    workflow = state().definitions.project.workflows.get(workflow_id)
    types: dict[str, str] = {}
    for task in workflow.tasks if workflow is not None else ():
        types[task.id] = task.type
        for child in task.parallel.children if task.parallel is not None else ():
            types[child.id] = child.type
        if task.collection is not None:
            types[task.collection.task.id] = task.collection.task.type
    return types


def _type_of(types: dict[str, str], task_id: str) -> str | None:
    """A step's task type; a collection's item step (``x[3]``) has the type of ``x[]``."""
    if task_id.endswith("]") and "[" in task_id:
        return types.get(task_id[: task_id.rindex("[")] + "[]")
    return types.get(task_id)


def step_json(step: Step, task_type: str | None = None) -> dict[str, Any]:
    """One step as the API shows it; ``task_type`` is its task's (basic, router, ...)."""
    return {
        "id": step.id,
        "task_id": step.task_id,
        "type": task_type,
        "parent_id": step.parent_id,
        "item_index": step.item_index,
        "item": step.item,
        "seq": step.seq,
        "visit": step.visit,
        "status": step.status,
        "attempts": step.attempts,
        "lost": step.lost,
        "input": step.input,
        "output": step.output,
        "error": step.error,
        "cause": step.cause,
        "usage": step.usage,
        "worker": step.worker,
        "queued_at": iso(step.queued_at),
        "not_before": iso(step.not_before),
        "started_at": iso(step.started_at),
        "finished_at": iso(step.finished_at),
    }


def _openapi() -> dict[str, Any]:
    """The default executions section, with the step and list shapes this module answers."""
    import copy

    from app.openapi.common import NULLABLE_TIME, ref
    from app.openapi.executions import EXECUTIONS

    section: dict[str, Any] = copy.deepcopy(dict(EXECUTIONS))
    nullable_int = {"type": ["integer", "null"]}
    schemas = section["schemas"]
    schemas["Step"] = {
        "type": "object",
        "required": ["id", "task_id", "seq", "visit", "status", "attempts"],
        "properties": {
            "id": {"type": "string"},
            "task_id": {"type": "string"},
            "type": {
                "enum": [
                    "basic",
                    "router",
                    "sleep",
                    "signal",
                    "parallel",
                    "collection",
                    "wait",
                    None,
                ]
            },
            "parent_id": {"type": ["string", "null"]},
            "item_index": {"type": ["integer", "null"]},
            "item": {},
            "seq": {"type": "integer", "minimum": 1},
            "visit": {"type": "integer", "minimum": 1},
            "status": {
                "enum": [
                    "queued",
                    "running",
                    "waiting",
                    "retrying",
                    "succeeded",
                    "failed",
                    "timed_out",
                    "cancelled",
                ]
            },
            "attempts": {"type": "integer", "minimum": 0},
            "lost": nullable_int,
            "input": {},
            "output": {},
            "error": {"type": ["object", "null"]},
            "cause": {"type": ["object", "null"]},
            "usage": {"type": ["object", "null"]},
            "worker": {"type": ["string", "null"]},
            "queued_at": NULLABLE_TIME,
            "not_before": NULLABLE_TIME,
            "started_at": NULLABLE_TIME,
            "finished_at": NULLABLE_TIME,
        },
    }
    execution = schemas["Execution"]["properties"]
    execution["steps"] = {"type": "array", "items": ref("Step")}
    execution.update(
        workflow_version={"type": "string"},
        input={},
        output={},
        error={"type": ["object", "null"]},
        step_count={"type": "integer", "minimum": 0},
    )
    schemas["ExecutionList"]["properties"]["data"] = {
        "type": "object",
        "required": ["executions", "next_cursor"],
        "properties": {
            "executions": {"type": "array", "items": ref("Execution")},
            "next_cursor": {"type": ["string", "null"]},
        },
    }
    return section


#: this module's OpenAPI section (see :mod:`app.openapi`)
OPENAPI = _openapi()
