"""The OpenAPI sections of the workflows endpoints and ``GET /health``."""

from __future__ import annotations

from app.openapi.common import ERRORS_READ, Section, error, json_body, path_id, ref

WORKFLOWS: Section = {
    "paths": {
        "/api/v1/workflows": {
            "get": {
                "operationId": "listWorkflows",
                "summary": "Every loaded workflow.",
                "security": [{"bearer": []}],
                "responses": {
                    "200": json_body(ref("WorkflowList"), "The workflows, sorted by id."),
                    **ERRORS_READ,
                },
            }
        },
        "/api/v1/workflows/{workflow_id}": {
            "get": {
                "operationId": "getWorkflow",
                "summary": "One workflow: triggers with their schemas, tasks with transitions.",
                "security": [{"bearer": []}],
                "parameters": path_id("workflow_id"),
                "responses": {
                    "200": json_body(ref("WorkflowResponse"), "The workflow."),
                    "404": error("No such workflow."),
                    **ERRORS_READ,
                },
            }
        },
    },
    "schemas": {
        "Workflow": {
            "type": "object",
            "required": ["id", "version", "description", "triggers", "tasks"],
            "properties": {
                "id": {"type": "string"},
                "version": {"type": "string"},
                "description": {"type": "string"},
                "input_schema": {"type": ["object", "null"]},
                "triggers": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["type", "name", "schema"],
                        "properties": {
                            "type": {"const": "signal"},
                            "name": {"type": "string"},
                            "schema": {"type": ["object", "null"]},
                        },
                    },
                },
                "tasks": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["id", "uses", "on_success", "on_error", "final"],
                        "properties": {
                            "id": {"type": "string"},
                            "type": {"type": "string"},
                            "uses": {
                                "type": "object",
                                "properties": {
                                    "kind": {"enum": ["tool", "agent"]},
                                    "id": {"type": ["string", "null"]},
                                },
                            },
                            "action": {"type": ["string", "null"]},
                            "on_success": {"type": ["string", "null"]},
                            "on_error": {"type": ["string", "null"]},
                            "final": {"type": "boolean"},
                        },
                    },
                },
            },
        },
        "WorkflowResponse": {
            "type": "object",
            "required": ["success", "data"],
            "properties": {"success": {"const": True}, "data": ref("Workflow")},
        },
        "WorkflowList": {
            "type": "object",
            "required": ["success", "data"],
            "properties": {
                "success": {"const": True},
                "data": {
                    "type": "object",
                    "required": ["workflows"],
                    "properties": {"workflows": {"type": "array", "items": ref("Workflow")}},
                },
            },
        },
    },
}

HEALTH: Section = {
    "paths": {
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Each dependency's state; 503 when the database is down.",
                "security": [],
                "responses": {
                    "200": json_body(ref("Health"), "Usable (the broker may be down)."),
                    "503": json_body(ref("Health"), "The database is down."),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics, as text (scope metrics:read).",
                "responses": {
                    "200": {
                        "description": "The Prometheus text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **{code: ERRORS_READ[code] for code in ("400", "401", "403", "429")},
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    },
    "schemas": {
        "Health": {
            "type": "object",
            "required": ["status", "database", "broker"],
            "properties": {
                "status": {"enum": ["ok", "degraded", "unavailable"]},
                "database": {"enum": ["ok", "unavailable"]},
                "broker": {"enum": ["ok", "unavailable"]},
            },
        },
    },
}
