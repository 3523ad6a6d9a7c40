"""The API error sub-tree and the one handler that turns errors into the JSON envelope.

Every refusal the HTTP side makes is an :class:`ApiError` with an HTTP ``status``
and a machine-readable ``code``; what the client got wrong (every 4xx) is a
:class:`ClientError`, whatever the endpoint. :func:`init_app` installs one handler
that maps them, werkzeug's own HTTP errors (404, 405, 413...) and anything
unexpected to ``{"success": false, "error": {"code", "message", "details"}}``; an
unexpected error becomes a 500 ``internal_error`` without its stack trace (logged
instead).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, jsonify, request
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from workflows.errors import DatabaseUnavailable, HeraldError

log = logging.getLogger("herald.api")


class ApiError(HeraldError):
    """An error the API answers with: an HTTP status, a code, a message and details."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.details = details

    def headers(self) -> dict[str, str]:
        """Extra response headers this error needs (``WWW-Authenticate``, ``Retry-After``)."""
        return {}


class ClientError(ApiError):
    """A request the API refused because of what the client sent (a 4xx)."""

    status = 400
    code = "validation_error"


class ValidationFailed(ClientError):
    """The request is malformed: bad JSON, a missing or ill-typed field, a bad parameter."""


class Unauthorized(ClientError):
    """No bearer token, or one that matches no configured token."""

    status = 401
    code = "unauthorized"

    def headers(self) -> dict[str, str]:
        """Tell the client how to authenticate."""
        return {"WWW-Authenticate": 'Bearer realm="herald"'}


class Forbidden(ClientError):
    """The token is valid but may not do this (scope or event name)."""

    status = 403
    code = "forbidden"


class NotFound(ClientError):
    """The resource asked for does not exist."""

    status = 404
    code = "not_found"


class MethodNotAllowed(ClientError):
    """The resource exists but does not answer this HTTP method."""

    status = 405
    code = "method_not_allowed"


class Conflict(ClientError):
    """The idempotency key was already used by this token with a different body."""

    status = 409
    code = "conflict"


class PayloadTooLarge(ClientError):
    """The request body is larger than ``HERALD_MAX_BODY_BYTES``."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ClientError):
    """The request body is not ``application/json``."""

    status = 415
    code = "unsupported_media_type"


class SchemaValidationFailed(ClientError):
    """The payload does not satisfy the schema of every subscribed workflow."""

    status = 422
    code = "schema_validation_failed"


class RateLimited(ClientError):
    """The token sent more requests per second than ``HERALD_RATE_LIMIT`` allows."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        """When the client may try again, in whole seconds."""
        return {"Retry-After": str(self.retry_after)}


class Unavailable(ApiError):
    """A dependency the request needs (the database) cannot be reached; nothing was done."""

    status = 503
    code = "unavailable"


#: werkzeug's HTTP errors that the API answers in its own envelope
_HTTP_CODES = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The error envelope."""
    return {"success": False, "error": {"code": code, "message": message, "details": details}}


def error_response(error: ApiError) -> Response:
    """The response for an :class:`ApiError`."""
    response = jsonify(error_body(error.code, error.message, error.details))
    response.status_code = error.status
    response.headers.update(error.headers())
    return response


def as_api_error(exc: BaseException) -> ApiError | None:
    """The API error an exception stands for, or ``None`` if it is unexpected."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, DatabaseUnavailable | OperationalError | InterfaceError):
        return Unavailable("the database is unavailable; nothing was done, try again later")
    return None


def init_app(app: Flask) -> None:
    """Install the one error handler on ``app``."""

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _HTTP_CODES.get(status, "validation_error" if status < 500 else "internal_error")
        response = jsonify(error_body(code, exc.description or exc.name))
        response.status_code = status
        valid_methods = getattr(exc, "valid_methods", None)
        if status == 405 and valid_methods:
            response.headers["Allow"] = ", ".join(valid_methods)
        return response

    @app.errorhandler(Exception)
    def _any(exc: Exception) -> Response:
        error = as_api_error(exc)
        where = {"request_id": g.get("request_id"), "path": request.path}
        if error is None:
            log.error("unexpected error answering a request", exc_info=exc, extra=where)
            error = ApiError("an unexpected error occurred; it has been logged")
        elif isinstance(error, Unavailable):
            log.warning("database unavailable: %s", exc.__class__.__name__, extra=where)
        return error_response(error)
