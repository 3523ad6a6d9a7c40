"""herald's HTTP side: the Flask app factory, auth and the API blueprints.

:func:`create_app` follows Flask's tutorial: defaults, then the environment
(``Settings.from_env()``), then the caller's override. It loads the workflow
definitions once (a :class:`~workflows.errors.DefinitionError` is raised, not
half-loaded), builds the database engine and the Celery publisher, and keeps
them in one :class:`~app.state.HeraldState`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from flask import Flask, Response, g, request

from workflows import otel, tracing
from workflows.ids import new_id
from workflows.settings import Settings

#: an incoming X-Request-ID is echoed only if it looks like an id (else a new one is made)
_MAX_REQUEST_ID = 64


def create_app(config: Settings | Mapping[str, Any] | None = None) -> Flask:
    """The herald API for ``config``: a :class:`Settings`, overrides of the environment, or none."""
    from app import errors, logs
    from app.api import init_app as init_api
    from app.auth import load_tokens
    from app.publish import Publisher, make_publisher_celery
    from app.ratelimit import RateLimiter
    from app.refusals import Refusals
    from app.state import HeraldState
    from app.ui import init_app as init_ui
    from workflows.registry import Definitions
    from workflows.store.db import make_engine, make_sessionmaker

    settings = _settings(config)
    logs.configure(settings.log_level)
    definitions = Definitions.load(settings.project_dir)
    tokens = load_tokens(settings.api_tokens, settings.tokens_file, None)
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)

    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        HERALD_SETTINGS=settings,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    HeraldState(
        settings=settings,
        definitions=definitions,
        engine=engine,
        sessions=sessions,
        publisher=Publisher(make_publisher_celery(settings), sessions),
        tokens=tokens,
        limiter=RateLimiter(settings.rate_limit_per_second),
        refusals=Refusals(),
    ).init_app(app)
    errors.init_app(app)
    init_api(app)
    init_ui(app)
    app.before_request(_start_span)
    app.before_request(_request_id)
    app.after_request(_echo_request_id)
    app.teardown_request(_end_span)
    return app


def _settings(config: Settings | Mapping[str, Any] | None) -> Settings:
    """Defaults, then the environment, then the override."""
    if isinstance(config, Settings):
        return config
    overrides = dict(config or {})
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown setting(s): {', '.join(unknown)}")
    return Settings.from_env(**overrides)


def _request_id() -> None:
    """Take the client's ``X-Request-ID`` when it is a sane id, else make one.

    Also refuse a NUL in the path: no resource is named so, and PostgreSQL cannot
    even compare text holding one.
    """
    from app.errors import ValidationFailed

    given = request.headers.get("X-Request-ID", "")
    ok = 0 < len(given) <= _MAX_REQUEST_ID and given.isascii() and given.isprintable()
    g.request_id = given if ok else new_id("req")
    if "\x00" in request.path:
        raise ValidationFailed("the URL path may not contain the NUL character")


def _start_span() -> None:
    """Run the request in a span of the caller's ``traceparent`` trace, or of a new one.

    A dashboard page calls the API in process, in the same app context: that
    inner call stays in the page's span.
    """
    if "trace_token" in g:
        return
    span = tracing.child_of(request.headers.get(tracing.HEADER))
    g.trace_token = tracing.CURRENT.set(span)
    if otel.enabled():
        g.otel_span = otel.exported(span, f"{request.method} {request.path}")
        g.otel_span.__enter__()


def _end_span(_exc: BaseException | None) -> None:
    """Leave the request's span: the thread serves the next request in its own."""
    token = g.pop("trace_token", None)
    if token is not None:
        tracing.CURRENT.reset(token)
    exporting = g.pop("otel_span", None)
    if exporting is not None:
        exporting.__exit__(None, None, None)


def _echo_request_id(response: Response) -> Response:
    """Every answer carries the request id, and its span as ``traceparent``."""
    response.headers["X-Request-ID"] = g.get("request_id") or new_id("req")
    span = tracing.current()
    if span is not None:
        response.headers[tracing.HEADER] = span.traceparent
    return response
