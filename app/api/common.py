"""What every API blueprint shares: the success envelope, auth per scope, query parameters.

A read endpoint calls ``authorize("events:read")`` first; lists page with
:func:`page_params` / :func:`page` on the sortable id (an opaque cursor that
encodes the last id of the page).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar

from flask import Response, jsonify, request

from app.auth import require_scope
from app.errors import RateLimited, Unauthorized, ValidationFailed
from app.state import state
from workflows.settings import ApiToken

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
#: the WSGI environ key by which the dashboard's in-process calls name their token; a
#: client cannot set it (HTTP headers arrive as ``HTTP_*`` keys)
IN_PROCESS_TOKEN = "herald.ui.token"


def ok(data: Any, status: int = 200, **top: Any) -> Response:
    """``{"success": true, "data": data, **top}`` with ``status``."""
    response = jsonify({"success": True, **top, "data": data})
    response.status_code = status
    return response


def authorize(scope: str) -> ApiToken:
    """The calling token, which must hold ``scope``; 401, 403 or 429 otherwise.

    A 401 or 429 is counted (:mod:`app.refusals`). Then refuse query parameters
    the endpoint does not document (400 naming them).
    """
    st = state()
    token: ApiToken | None = None
    try:
        token = caller()
        require_scope(token, scope)
        st.limiter.check(token.name)
    except (Unauthorized, RateLimited) as exc:
        st.refusals.count(exc.status, token.name if token else None, request.remote_addr)
        raise
    refuse_unknown_query()
    return token


def caller() -> ApiToken:
    """The calling token: the dashboard's logged-in one for its in-process calls, else the
    bearer header's; :class:`Unauthorized` if there is none."""
    token = request.environ.get(IN_PROCESS_TOKEN)
    if isinstance(token, ApiToken):
        return token
    return state().tokens.authenticate(request.headers.get("Authorization"))


_RULE_VARIABLE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


@cache
def _documented_query() -> dict[tuple[str, str], frozenset[str]]:
    """(OpenAPI path, method) -> the query parameters the document declares."""
    from app.openapi import document

    known: dict[tuple[str, str], frozenset[str]] = {}
    for path, operations in document()["paths"].items():
        for method, operation in operations.items():
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            known[(path, method.upper())] = frozenset(names)
    return known


def refuse_unknown_query() -> None:
    """400 ``validation_error`` for a query parameter the operation lacks, or a NUL in one.

    (PostgreSQL cannot store or compare text holding NUL: refuse it at the door.)
    """
    if not request.args or request.url_rule is None:
        return
    for key, value in request.args.items(multi=True):
        if "\x00" in key or "\x00" in value:
            raise ValidationFailed(
                "query parameters may not contain the NUL character", details={"field": key}
            )
    path = _RULE_VARIABLE.sub(r"{\1}", request.url_rule.rule)
    allowed = _documented_query().get((path, request.method))
    if allowed is None:  # an endpoint the document does not describe: nothing to check
        return
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        raise ValidationFailed(
            f"unknown query parameter(s): {', '.join(unknown)}"
            + (f"; allowed: {', '.join(sorted(allowed))}" if allowed else ""),
            details={"field": unknown[0]},
        )


def encode_cursor(last_id: str) -> str:
    """An opaque cursor meaning: the page after the item with this id."""
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The id a cursor stands for; 400 ``validation_error`` if it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        last_id = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        last_id = ""
    if not last_id or "_" not in last_id or not last_id.isprintable():
        raise ValidationFailed(
            "`cursor` is not a cursor this API gave", details={"field": "cursor"}
        )
    return last_id


def page_params() -> tuple[int, str | None]:
    """``limit`` (1..200, default 50) and the decoded ``cursor`` from the query string."""
    raw = request.args.get("limit")
    limit = DEFAULT_LIMIT
    if raw is not None:
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            raise ValidationFailed(
                f"`limit` must be an integer from 1 to {MAX_LIMIT}", details={"field": "limit"}
            )
        limit = int(raw)
    cursor = request.args.get("cursor")
    return limit, decode_cursor(cursor) if cursor is not None else None


def page(items: Sequence[T], limit: int, key: Any) -> tuple[Sequence[T], str | None]:
    """Cut a list fetched with ``limit + 1`` rows to ``limit`` and make the next cursor."""
    if len(items) <= limit:
        return items, None
    kept = items[:limit]
    return kept, encode_cursor(key(kept[-1]))


def time_param(name: str) -> datetime | None:
    """An ISO 8601 query parameter as aware UTC (naive means UTC); 400 if unparseable."""
    _once(name)
    raw = request.args.get(name)
    if raw is None:
        return None
    if "T" in raw:  # an unencoded "+01:00" offset arrives as " 01:00"
        raw = raw.replace(" ", "+")
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # unparseable, or out of range once in UTC
        raise ValidationFailed(
            f"`{name}` must be an ISO 8601 date-time such as 2026-01-31T12:00:00Z",
            details={"field": name},
        ) from None


def choice_param(name: str, allowed: Sequence[str]) -> str | None:
    """A query parameter that must be one of ``allowed``."""
    _once(name)
    raw = request.args.get(name)
    if raw is not None and raw not in allowed:
        raise ValidationFailed(
            f"`{name}` must be one of {', '.join(allowed)}", details={"field": name}
        )
    return raw


def _once(name: str) -> None:
    """400 for a filter given twice (``?status=a&status=b``: which one was meant?)."""
    if len(request.args.getlist(name)) > 1:
        raise ValidationFailed(f"give `{name}` at most once", details={"field": name})


def iso(moment: datetime | None) -> str | None:
    """A stored time as an ISO 8601 string in UTC (``None`` stays ``None``)."""
    if moment is None:
        return None
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.isoformat().replace("+00:00", "Z")
