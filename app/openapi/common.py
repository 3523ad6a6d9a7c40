"""Building blocks the OpenAPI sections share: references, responses, the error schema."""

from __future__ import annotations

from typing import Any

Section = dict[str, dict[str, Any]]

NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}

#: a W3C trace id: 32 lowercase hex digits (null for what was stored before traces)
TRACE_ID = {
    "type": ["string", "null"],
    "pattern": "^[0-9a-f]{32}$",
    "description": "The W3C trace id (README, Tracing); null for rows stored before traces.",
}

#: the ``traceparent`` request header of the endpoints that start workflows
TRACEPARENT = {
    "name": "traceparent",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "W3C Trace Context `00-<trace id>-<parent id>-<flags>`: the event and its "
    "executions join that trace. Absent or invalid: a new trace is started (never a 400). "
    "Every answer carries a `traceparent` header naming the request's span.",
}


def ref(name: str) -> dict[str, str]:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def path_id(name: str) -> list[dict[str, Any]]:
    """The ``parameters`` of a path with one string id segment named ``name``."""
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}]


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A JSON response with ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error(description: str) -> dict[str, Any]:
    """An error response in the envelope."""
    return json_body(ref("Error"), description)


ERRORS_READ = {
    "400": error(
        "A malformed request: an unknown query parameter, a bad filter, limit or cursor, "
        "or a NUL character in the URL; `details.field` names it when there is one."
    ),
    "401": {
        **error("Missing or invalid bearer token."),
        "headers": {
            "WWW-Authenticate": {"required": True, "schema": {"type": "string"}},
        },
    },
    "403": error("The token lacks the scope this operation needs."),
    "429": {
        **error("Rate limited (HERALD_RATE_LIMIT requests/second per token)."),
        "headers": {
            "Retry-After": {
                "required": True,
                "description": "Seconds to wait before trying again.",
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            },
        },
    },
    "503": error("The database is unavailable."),
}

COMMON_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["success", "error"],
        "properties": {
            "success": {"const": False},
            "error": {
                "type": "object",
                "required": ["code", "message", "details"],
                "properties": {
                    "code": {
                        "enum": [
                            "validation_error",
                            "unauthorized",
                            "forbidden",
                            "not_found",
                            "method_not_allowed",
                            "conflict",
                            "payload_too_large",
                            "unsupported_media_type",
                            "schema_validation_failed",
                            "rate_limited",
                            "unavailable",
                            "internal_error",
                        ]
                    },
                    "message": {"type": "string"},
                    "details": {},
                },
            },
        },
    },
}
