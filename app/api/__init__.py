"""The API's blueprints, registered in one place: ``/api/v1/...`` and ``/health``."""

from __future__ import annotations

from flask import Flask

PREFIX = "/api/v1"


def init_app(app: Flask) -> None:
    """Register every blueprint on ``app``."""
    from app.api import events, executions, health, intake, metrics, workers, workflows
    from app.openapi import bp as openapi_bp

    app.register_blueprint(events.bp, url_prefix=PREFIX)
    app.register_blueprint(intake.bp, url_prefix=PREFIX)
    app.register_blueprint(workflows.bp, url_prefix=PREFIX)
    app.register_blueprint(executions.bp, url_prefix=PREFIX)
    app.register_blueprint(workers.bp, url_prefix=PREFIX)
    app.register_blueprint(openapi_bp, url_prefix=PREFIX)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
