"""The OpenAPI section of the Events API (``app.api.events``)."""

from __future__ import annotations

from app.envelope import MAX_KEY, MAX_NAME, NAME
from app.openapi.common import (
    ERRORS_READ,
    NULLABLE_TIME,
    TRACE_ID,
    TRACEPARENT,
    Section,
    error,
    json_body,
    path_id,
    ref,
)
from app.openapi.intake import ENTRY
from workflows.store.events import DELIVERY_STATES

#: who reads which events: said on every read operation
READ_SCOPE = (
    "Needs `events:read`. A token sees only the events it sent, unless it holds "
    "`events:read:all` (or `*`); in both cases only events whose name matches one of "
    "its event-name patterns. An event it may not see is answered 404, like one that "
    "does not exist."
)

EVENT_NAME = {"type": "string", "pattern": f"^{NAME.pattern}$", "maxLength": MAX_NAME}

EVENTS: Section = {
    "paths": {
        "/api/v1/events": {
            "post": {
                "operationId": "sendEvent",
                "summary": "Send an event; every workflow subscribed to its name starts.",
                "security": [{"bearer": []}],
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY},
                        "description": "Same as the body's `id`; both given must be equal.",
                    },
                    {
                        "name": "X-Request-ID",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "Echoed back (or generated) and recorded on the event.",
                    },
                    TRACEPARENT,
                    *(
                        {
                            "name": f"ce-{attribute}",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                            "description": f"CloudEvents binary mode: the `{attribute}` "
                            "attribute (with `ce-specversion: 1.0`, the body is the data).",
                        }
                        for attribute in ("specversion", "id", "source", "type")
                    ),
                    {
                        "name": "dry_run",
                        "in": "query",
                        "required": False,
                        "schema": {"enum": ["true", "false"]},
                        "description": "`true`: validate and route only, and answer 200 with "
                        "what would run and why; nothing is written or published.",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": ref("EventRequest")},
                        "application/cloudevents+json": {"schema": ref("CloudEvent")},
                        "application/cloudevents-batch+json": {
                            "schema": {"type": "array", "minItems": 1, "items": ENTRY}
                        },
                    },
                },
                "responses": {
                    "200": json_body(ref("DryRun"), "A dry run: what would run, and why."),
                    "202": json_body(ref("EventAccepted"), "Accepted (committed) or replayed."),
                    "207": json_body(
                        ref("BatchResult"), "A CloudEvents batch: one result per event."
                    ),
                    "400": error("Malformed body; `details.field` names the field."),
                    "401": ERRORS_READ["401"],
                    "403": error("The token lacks `events:write` or may not send this name."),
                    "409": error("Idempotency key reused by this token with another body."),
                    "413": error("The body is larger than HERALD_MAX_BODY_BYTES."),
                    "415": error("The body is not `application/json`."),
                    "422": json_body(
                        ref("SchemaValidationError"),
                        "The payload fails a subscribed workflow's schema; nothing started. "
                        "At most HERALD_MAX_ERRORS (20) errors per workflow, and how many more.",
                    ),
                    "429": ERRORS_READ["429"],
                    "503": error("The database is unavailable; nothing was accepted."),
                },
            },
            "get": {
                "operationId": "listEvents",
                "summary": "Events, newest first, with filters and cursor pagination.",
                "description": READ_SCOPE,
                "security": [{"bearer": []}],
                "parameters": [
                    {"name": "name", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"enum": ["accepted", "dispatched", "unrouted"]},
                    },
                    {
                        "name": "since",
                        "in": "query",
                        "schema": {"type": "string", "format": "date-time"},
                    },
                    {
                        "name": "until",
                        "in": "query",
                        "schema": {"type": "string", "format": "date-time"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                    },
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "delivery",
                        "in": "query",
                        "schema": {"enum": list(DELIVERY_STATES)},
                        "description": "Only events with a delivery (event, workflow) whose "
                        "current execution is in this state.",
                    },
                    {
                        "name": "delivery_since",
                        "in": "query",
                        "schema": {"type": "string", "format": "date-time"},
                        "description": "With `delivery`: reached at or after this time "
                        "(`delivery=failed&delivery_since=...`: failed in the last hour).",
                    },
                ],
                "responses": {
                    "200": json_body(ref("EventList"), "A page of events."),
                    "400": error("A bad filter, limit or cursor."),
                    **ERRORS_READ,
                },
            },
        },
        "/api/v1/events/{event_id}": {
            "get": {
                "operationId": "getEvent",
                "summary": "One event, its planned executions and their current status.",
                "description": READ_SCOPE,
                "security": [{"bearer": []}],
                "parameters": path_id("event_id"),
                "responses": {
                    "200": json_body(ref("EventResponse"), "The event."),
                    "404": error("No such event, or one this token may not see."),
                    **ERRORS_READ,
                },
            }
        },
    },
    "schemas": {
        "EventRequest": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": EVENT_NAME,
                "payload": {"type": ["object", "null"]},
                "id": {"type": "string", "minLength": 1, "maxLength": MAX_KEY},
            },
        },
        "EventAccepted": {
            "type": "object",
            "required": ["success", "message", "event_id", "data"],
            "properties": {
                "success": {"const": True},
                "message": {"type": "string"},
                "event_id": {"type": "string"},
                "trace_id": TRACE_ID,
                "data": {
                    "type": "object",
                    "required": [
                        "event_id",
                        "message",
                        "name",
                        "workflows",
                        "resumed",
                        "duplicate",
                    ],
                    "properties": {
                        "event_id": {"type": "string"},
                        "message": {"type": "string"},
                        "name": {"type": "string"},
                        "duplicate": {"type": "boolean"},
                        "trace_id": TRACE_ID,
                        "filtered": {
                            "type": "array",
                            "description": "Subscribed workflows whose trigger `filter` turned "
                            "this event away (not started, not a 422), with the reason; only "
                            "present when there is one.",
                            "items": {
                                "type": "object",
                                "required": ["workflow_id", "trigger", "reason"],
                                "properties": {
                                    "workflow_id": {"type": "string"},
                                    "trigger": {"type": "string"},
                                    "reason": {"type": "string"},
                                },
                            },
                        },
                        "resumed": {
                            "type": "array",
                            "description": "The waiting steps (type: wait) this event resumed; "
                            "a replayed key lists them again.",
                            "items": {
                                "type": "object",
                                "required": ["execution_id", "step_id", "task_id"],
                                "properties": {
                                    "execution_id": {"type": "string"},
                                    "step_id": {"type": "string"},
                                    "task_id": {"type": "string"},
                                },
                            },
                        },
                        "workflows": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["workflow_id", "execution_id"],
                                "properties": {
                                    "workflow_id": {"type": "string"},
                                    "execution_id": {"type": "string"},
                                    "trigger": {
                                        "type": "string",
                                        "description": "The trigger name that matched: the "
                                        "event's name or a wildcard pattern (`order.*`).",
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
        "SchemaValidationError": {
            "allOf": [ref("Error")],
            "properties": {
                "error": {
                    "properties": {
                        "details": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": [
                                    "workflow_id",
                                    "errors",
                                    "more_errors",
                                    "more_errors_exact",
                                ],
                                "properties": {
                                    "workflow_id": {"type": "string"},
                                    "more_errors": {
                                        "type": "integer",
                                        "minimum": 0,
                                        "description": "Errors found beyond those listed.",
                                    },
                                    "more_errors_exact": {
                                        "type": "boolean",
                                        "description": "False when the payload was too large "
                                        "to examine whole: `more_errors` is then a lower bound.",
                                    },
                                    "errors": {
                                        "type": "array",
                                        "description": "At most HERALD_MAX_ERRORS errors.",
                                        "items": {
                                            "type": "object",
                                            "required": ["path", "message"],
                                            "properties": {
                                                "path": {"type": "string"},
                                                "message": {"type": "string"},
                                            },
                                        },
                                    },
                                },
                            },
                        }
                    }
                }
            },
        },
        "Event": {
            "type": "object",
            "required": ["id", "name", "status", "payload", "routes", "received_at"],
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "status": {"enum": ["accepted", "dispatched", "unrouted"]},
                "payload": {"type": "object"},
                "routes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["workflow_id", "version", "execution_id"],
                        "properties": {
                            "workflow_id": {"type": "string"},
                            "version": {"type": "string"},
                            "execution_id": {"type": "string"},
                            "trigger": {"type": "string"},
                            "execution_status": {"type": ["string", "null"]},
                        },
                    },
                },
                "token_name": {"type": "string"},
                "request_id": {"type": ["string", "null"]},
                "idempotency_key": {"type": ["string", "null"]},
                "received_at": {"type": "string", "format": "date-time"},
                "dispatched_at": NULLABLE_TIME,
                "publish_count": {"type": "integer", "minimum": 0},
                "trace_id": TRACE_ID,
            },
        },
        "EventResponse": {
            "type": "object",
            "required": ["success", "data"],
            "properties": {
                "success": {"const": True},
                "data": {
                    "allOf": [ref("Event")],
                    "required": ["deliveries", "replays"],
                    "properties": {
                        "replays": {
                            "type": "array",
                            "description": "Each replay of the event: who, when, what it "
                            "started (`executions`: workflow_id, execution_id, replaces).",
                            "items": {
                                "type": "object",
                                "required": ["id", "mode", "token_name", "at", "executions"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "mode": {"enum": ["all", "failed"]},
                                    "token_name": {"type": "string"},
                                    "at": {"type": "string", "format": "date-time"},
                                    "executions": {"type": "array", "items": {"type": "object"}},
                                },
                            },
                        },
                        "deliveries": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["workflow_id", "state", "execution_id"],
                                "properties": {
                                    "workflow_id": {"type": "string"},
                                    "state": {"enum": list(DELIVERY_STATES)},
                                    "execution_id": {"type": ["string", "null"]},
                                    "executions": {"type": "integer", "minimum": 0},
                                    "replays": {"type": "integer", "minimum": 0},
                                    "reason": {
                                        "type": "string",
                                        "description": "Why a filtered delivery was not started.",
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
        "EventList": {
            "type": "object",
            "required": ["success", "data"],
            "properties": {
                "success": {"const": True},
                "data": {
                    "type": "object",
                    "required": ["events", "next_cursor"],
                    "properties": {
                        "events": {"type": "array", "items": ref("Event")},
                        "next_cursor": {"type": ["string", "null"]},
                    },
                },
            },
        },
    },
}
