"""The default OpenAPI section of the executions endpoints (``app.api.executions``).

Used unless ``app.api.executions`` defines its own ``OPENAPI`` section. The
shapes here are deliberately open (``additionalProperties`` allowed): the
engine's module owns the details.
"""

from __future__ import annotations

from typing import Any

from app.openapi.common import (
    ERRORS_READ,
    NULLABLE_TIME,
    TRACE_ID,
    Section,
    error,
    json_body,
    path_id,
    ref,
)

_ID = path_id("execution_id")

#: who sees which executions: said on every operation
_SCOPE = (
    "A token sees, and acts on, only the executions its own events started, unless it "
    "holds `executions:read:all` (or `*`); in both cases only those started by events "
    "whose name matches one of its event-name patterns. An execution it may not see is "
    "answered 404, like one that does not exist."
)
_NOT_FOUND = error("No such execution, or one this token may not see.")


def _control(operation_id: str, summary: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "description": f"Needs `executions:write`. {_SCOPE}",
            "security": [{"bearer": []}],
            "parameters": _ID,
            "responses": {
                "200": json_body(ref("ExecutionResponse"), "The execution after the change."),
                "202": json_body(ref("ExecutionResponse"), "The change was accepted."),
                "404": _NOT_FOUND,
                "409": error("The execution is not in a state that allows this."),
                **ERRORS_READ,
            },
        }
    }


EXECUTIONS: Section = {
    "paths": {
        "/api/v1/executions": {
            "get": {
                "operationId": "listExecutions",
                "summary": "Executions, newest first, with filters and cursor pagination.",
                "description": f"Needs `executions:read`. {_SCOPE}",
                "security": [{"bearer": []}],
                "parameters": [
                    {"name": "workflow_id", "in": "query", "schema": {"type": "string"}},
                    {"name": "event_id", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {
                            "enum": ["pending", "running", "succeeded", "failed", "cancelled"]
                        },
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                    },
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": json_body(ref("ExecutionList"), "A page of executions."),
                    "400": error("A bad filter, limit or cursor."),
                    **ERRORS_READ,
                },
            }
        },
        "/api/v1/executions/{execution_id}": {
            "get": {
                "operationId": "getExecution",
                "summary": "One execution with its steps (status, attempts, input, output, error).",
                "description": f"Needs `executions:read`. {_SCOPE}",
                "security": [{"bearer": []}],
                "parameters": _ID,
                "responses": {
                    "200": json_body(ref("ExecutionResponse"), "The execution."),
                    "404": _NOT_FOUND,
                    **ERRORS_READ,
                },
            }
        },
        "/api/v1/executions/{execution_id}/cancel": _control(
            "cancelExecution", "Cancel an execution; steps not yet finished are cancelled."
        ),
        "/api/v1/executions/{execution_id}/retry": _control(
            "retryExecution", "Run a failed execution again from its failed step."
        ),
    },
    "schemas": {
        "Execution": {
            "type": "object",
            "required": ["id", "workflow_id", "status"],
            "properties": {
                "id": {"type": "string"},
                "event_id": {"type": ["string", "null"]},
                "workflow_id": {"type": "string"},
                "status": {"enum": ["pending", "running", "succeeded", "failed", "cancelled"]},
                "created_at": {"type": "string", "format": "date-time"},
                "started_at": NULLABLE_TIME,
                "finished_at": NULLABLE_TIME,
                "trace_id": TRACE_ID,
                "steps": {"type": "array", "items": {"type": "object"}},
            },
        },
        "ExecutionResponse": {
            "type": "object",
            "required": ["success", "data"],
            "properties": {"success": {"const": True}, "data": ref("Execution")},
        },
        "ExecutionList": {
            "type": "object",
            "required": ["success", "data"],
            "properties": {"success": {"const": True}, "data": {"type": "object"}},
        },
    },
}
