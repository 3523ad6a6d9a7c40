"""The OpenAPI section of batches, dry runs, replays and CloudEvents (``app.api.intake``)."""

from __future__ import annotations

from typing import Any

from app.envelope import MAX_NAME, NAME
from app.openapi.common import (
    ERRORS_READ,
    TRACE_ID,
    TRACEPARENT,
    Section,
    error,
    json_body,
    path_id,
    ref,
)
from workflows.store.events import DELIVERY_STATES

CLOUDEVENT = {
    "type": "object",
    "required": ["specversion", "id", "source", "type"],
    "description": "A structured CloudEvent 1.0: `type` is the event name, `data` the payload, "
    "`id` with `source` the idempotency key. Other attributes are kept out of the payload.",
    "properties": {
        "specversion": {"const": "1.0"},
        "id": {"type": "string", "minLength": 1},
        "source": {"type": "string", "minLength": 1},
        "type": {"type": "string", "pattern": f"^{NAME.pattern}$", "maxLength": MAX_NAME},
        "datacontenttype": {"type": "string"},
        "data": {"type": ["object", "null"]},
    },
}

#: an entry of a batch: any object; each is checked on its own and answered in its result
ENTRY = {
    "description": "An EventRequest (or, in a CloudEvents batch, a CloudEvent); an entry "
    "that is not valid is refused in its own result, not with the whole batch.",
}

_WRITE_ERRORS: dict[str, Any] = {
    "400": error("Malformed body; `details.field` names the field."),
    "401": ERRORS_READ["401"],
    "403": error("The token lacks `events:write`."),
    "413": error("The body is larger than HERALD_BATCH_MAX_BYTES."),
    "415": error("The body is neither JSON nor a CloudEvents batch."),
    "429": ERRORS_READ["429"],
    "503": error("The database is unavailable; nothing was accepted."),
}

_REPLAY_ERRORS: dict[str, Any] = {
    "400": error("A bad option; `details.field` names it."),
    "401": ERRORS_READ["401"],
    "403": error("The token lacks `events:replay`."),
    "415": error("The options are not JSON."),
    "429": ERRORS_READ["429"],
    "503": error("The database is unavailable."),
}

_MODE = {"enum": ["all", "failed"], "default": "all"}

INTAKE: Section = {
    "paths": {
        "/api/v1/events/batch": {
            "post": {
                "operationId": "sendEvents",
                "summary": "Send up to HERALD_BATCH_MAX events; 207 with one result per entry.",
                "description": "Each entry is checked as a single event is; the accepted ones "
                "are written in one statement and dispatched together, the refused ones change "
                "nothing. `index` is an entry's position; an error's `details.field` names the "
                "field within the entry.",
                "security": [{"bearer": []}],
                "parameters": [TRACEPARENT],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["events"],
                                "additionalProperties": False,
                                "properties": {
                                    "events": {
                                        "type": "array",
                                        "minItems": 1,
                                        "items": ENTRY,
                                    }
                                },
                            }
                        },
                        "application/cloudevents-batch+json": {
                            "schema": {"type": "array", "minItems": 1, "items": ENTRY}
                        },
                    },
                },
                "responses": {
                    "207": json_body(ref("BatchResult"), "One result per entry, in order."),
                    **_WRITE_ERRORS,
                },
            }
        },
        "/api/v1/events/{event_id}/replay": {
            "post": {
                "operationId": "replayEvent",
                "summary": "Start the event's subscribed workflows again as new executions.",
                "description": "Needs `events:replay`, on an event the token may read. "
                "`mode: all` starts every workflow subscribed now; `mode: failed` only those "
                "whose current execution failed or was cancelled. Each new execution "
                "supersedes the current one, and the replay is recorded (who, when).",
                "security": [{"bearer": []}],
                "parameters": [*path_id("event_id"), TRACEPARENT],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {"mode": _MODE, "preview": {"type": "boolean"}},
                            }
                        }
                    },
                },
                "responses": {
                    "200": json_body(ref("ReplayAnswer"), "Preview: what would start."),
                    "202": json_body(ref("ReplayAnswer"), "Started (committed)."),
                    "404": error("No such event, or one this token may not see."),
                    "409": error("The event has not been dispatched yet."),
                    "422": error("The payload no longer satisfies a subscribed schema."),
                    **_REPLAY_ERRORS,
                },
            }
        },
        "/api/v1/events/replay": {
            "post": {
                "operationId": "replayEvents",
                "summary": "Replay the events a filter selects (name, status, time), or preview.",
                "security": [{"bearer": []}],
                "parameters": [TRACEPARENT],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "mode": _MODE,
                                    "preview": {"type": "boolean"},
                                    "name": {"type": ["string", "null"]},
                                    "status": {
                                        "enum": ["accepted", "dispatched", "unrouted", None]
                                    },
                                    "since": {"type": ["string", "null"], "format": "date-time"},
                                    "until": {"type": ["string", "null"], "format": "date-time"},
                                    "delivery": {
                                        "enum": [*DELIVERY_STATES, None],
                                        "description": "Events with a delivery in this "
                                        "state (`failed`: replay what failed).",
                                    },
                                    "delivery_since": {
                                        "type": ["string", "null"],
                                        "format": "date-time",
                                    },
                                    "limit": {"type": "integer", "minimum": 1, "maximum": 200},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": json_body(ref("BulkReplayAnswer"), "Preview: what would start."),
                    "202": json_body(ref("BulkReplayAnswer"), "Started, event by event."),
                    **_REPLAY_ERRORS,
                },
            }
        },
    },
    "schemas": {
        "CloudEvent": CLOUDEVENT,
        "BatchResult": {
            "type": "object",
            "required": ["success", "message", "data"],
            "properties": {
                "success": {"const": True},
                "message": {"type": "string"},
                "data": {
                    "type": "object",
                    "required": ["accepted", "refused", "results"],
                    "properties": {
                        "accepted": {"type": "integer", "minimum": 0},
                        "refused": {"type": "integer", "minimum": 0},
                        "results": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["index", "status"],
                                "properties": {
                                    "index": {"type": "integer", "minimum": 0},
                                    "status": {"type": "integer"},
                                    "event_id": {"type": "string"},
                                    "name": {"type": "string"},
                                    "workflows": {"type": "array"},
                                    "duplicate": {"type": "boolean"},
                                    "trace_id": TRACE_ID,
                                    "filtered": {
                                        "type": "array",
                                        "description": "Workflows its trigger filters turned "
                                        "away, with the reason.",
                                    },
                                    "error": {"type": "object"},
                                },
                            },
                        },
                    },
                },
            },
        },
        "Replay": {
            "type": "object",
            "required": ["event_id", "status"],
            "properties": {
                "event_id": {"type": "string"},
                "status": {"type": "integer"},
                "replay_id": {"type": ["string", "null"]},
                "mode": {"enum": ["all", "failed"]},
                "preview": {"type": "boolean"},
                "started": {"type": "array", "items": {"type": "object"}},
                "skipped": {"type": "array", "items": {"type": "object"}},
                "error": {"type": "object"},
            },
        },
        "ReplayAnswer": {
            "type": "object",
            "required": ["success", "data"],
            "properties": {
                "success": {"const": True},
                "message": {"type": "string"},
                "data": ref("Replay"),
            },
        },
        "BulkReplayAnswer": {
            "type": "object",
            "required": ["success", "data"],
            "properties": {
                "success": {"const": True},
                "message": {"type": "string"},
                "data": {
                    "type": "object",
                    "required": ["events", "replays"],
                    "properties": {
                        "events": {"type": "integer", "minimum": 0},
                        "replays": {"type": "array", "items": ref("Replay")},
                    },
                },
            },
        },
        "DryRun": {
            "type": "object",
            "required": ["success", "data"],
            "properties": {
                "success": {"const": True},
                "message": {"type": "string"},
                "data": {
                    "type": "object",
                    "required": ["dry_run", "name", "workflows", "duplicate_of", "conflict"],
                    "properties": {
                        "filtered": {
                            "type": "array",
                            "description": "Subscribed workflows whose trigger `filter` turns "
                            "the event away, with the reason.",
                            "items": {"type": "object"},
                        },
                        "dry_run": {"const": True},
                        "message": {"type": "string"},
                        "name": {"type": "string"},
                        "workflows": {"type": "array", "items": {"type": "object"}},
                        "duplicate_of": {"type": ["string", "null"]},
                        "conflict": {"type": "boolean"},
                    },
                },
            },
        },
    },
}
