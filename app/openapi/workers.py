"""The OpenAPI section of ``GET /api/v1/workers`` (``app.api.workers``)."""

from __future__ import annotations

from app.openapi.common import ERRORS_READ, NULLABLE_TIME, Section, json_body, ref

TIME = {"type": "string", "format": "date-time"}

WORKERS: Section = {
    "paths": {
        "/api/v1/workers": {
            "get": {
                "operationId": "listWorkers",
                "summary": "The worker fleet as the database sees it: alive, stale, stopped; "
                "what each is running.",
                "description": "A worker is `alive` while it beats, `stale` once silent for "
                "HERALD_WORKER_DEAD_AFTER seconds without stopping (presumed dead: the "
                "recovery sweep requeues its steps), `stopped` after a clean shutdown. "
                "Newest first. Needs the `workers:read` scope.",
                "security": [{"bearer": []}],
                "parameters": [
                    {
                        "name": "state",
                        "in": "query",
                        "schema": {"enum": ["alive", "stale", "stopped"]},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                    },
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": json_body(ref("WorkerList"), "A page of workers."),
                    **ERRORS_READ,
                },
            }
        },
    },
    "schemas": {
        "Worker": {
            "type": "object",
            "required": [
                "id",
                "hostname",
                "host",
                "pid",
                "pool",
                "concurrency",
                "queues",
                "version",
                "status",
                "state",
                "started_at",
                "last_seen_at",
                "seconds_since_seen",
                "stopped_at",
                "running_count",
                "running",
            ],
            "properties": {
                "id": {"type": "string"},
                "hostname": {"type": "string", "description": "The Celery node name."},
                "host": {"type": "string"},
                "pid": {"type": "integer", "description": "The worker's main process."},
                "pool": {"type": "string"},
                "concurrency": {"type": "integer", "minimum": 1},
                "queues": {"type": "array", "items": {"type": "string"}},
                "version": {"type": "string", "description": "The herald version it runs."},
                "status": {
                    "enum": ["running", "stopping", "stopped"],
                    "description": "What the worker last said about itself.",
                },
                "state": {
                    "enum": ["alive", "stale", "stopped"],
                    "description": "How the fleet sees it now, from its heartbeats.",
                },
                "started_at": TIME,
                "last_seen_at": TIME,
                "seconds_since_seen": {"type": "number", "minimum": 0},
                "stopped_at": NULLABLE_TIME,
                "running_count": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "How many steps are recorded as running under this worker.",
                },
                "running": {
                    "type": "array",
                    "description": "The steps recorded as running under this worker, of the "
                    "executions the token may read (the executions:read rules).",
                    "items": {
                        "type": "object",
                        "required": ["step_id", "execution_id", "task_id", "visit", "attempt"],
                        "properties": {
                            "step_id": {"type": "string"},
                            "execution_id": {"type": "string"},
                            "task_id": {"type": "string"},
                            "visit": {"type": "integer", "minimum": 1},
                            "attempt": {"type": "integer", "minimum": 1},
                            "process": {"type": ["string", "null"]},
                            "started_at": NULLABLE_TIME,
                        },
                    },
                },
            },
        },
        "WorkerList": {
            "type": "object",
            "required": ["success", "data"],
            "properties": {
                "success": {"const": True},
                "data": {
                    "type": "object",
                    "required": ["workers", "counts", "dead_after_seconds", "next_cursor"],
                    "properties": {
                        "workers": {"type": "array", "items": ref("Worker")},
                        "counts": {
                            "type": "object",
                            "required": ["alive", "stale", "stopped"],
                            "properties": {
                                "alive": {"type": "integer", "minimum": 0},
                                "stale": {"type": "integer", "minimum": 0},
                                "stopped": {"type": "integer", "minimum": 0},
                            },
                        },
                        "dead_after_seconds": {"type": "number"},
                        "next_cursor": {"type": ["string", "null"]},
                    },
                },
            },
        },
    },
}
