"""The OpenAPI 3.1 document of the API, served at ``GET /api/v1/openapi.json``.

The document is assembled from sections, one per blueprint module: a dict
``{"paths": {...}, "schemas": {...}}`` (see :data:`SECTIONS`). A blueprint module
may describe itself with a module-level ``OPENAPI`` dict of that shape, which
then replaces its default section here: this is how ``app.api.executions``
documents its own endpoints without editing this package. Tests check the
document with openapi-spec-validator, validate real answers against its schemas
and fuzz the API from it.
"""

from __future__ import annotations

import copy
import importlib
from functools import cache
from typing import Any

from flask import Blueprint, Response, jsonify

from app.openapi.common import COMMON_SCHEMAS, Section
from app.openapi.events import EVENTS
from app.openapi.executions import EXECUTIONS
from app.openapi.intake import INTAKE
from app.openapi.workers import WORKERS
from app.openapi.workflows import HEALTH, WORKFLOWS

#: blueprint module -> its default section
SECTIONS: dict[str, Section] = {
    "app.api.events": EVENTS,
    "app.api.intake": INTAKE,
    "app.api.workflows": WORKFLOWS,
    "app.api.health": HEALTH,
    "app.api.executions": EXECUTIONS,
    "app.api.workers": WORKERS,
}

bp = Blueprint("openapi", __name__)


def build_document(sections: dict[str, Section] | None = None) -> dict[str, Any]:
    """The OpenAPI document from ``sections`` (a module's own ``OPENAPI`` wins)."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = copy.deepcopy(COMMON_SCHEMAS)
    for module_name, default in (sections or SECTIONS).items():
        module = importlib.import_module(module_name)
        section: Section = getattr(module, "OPENAPI", default)
        paths.update(copy.deepcopy(section.get("paths", {})))
        schemas.update(copy.deepcopy(section.get("schemas", {})))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "herald",
            "version": "1",
            "description": "Events in, workflows out: the herald Events API and its read side.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        },
    }


@cache
def document() -> dict[str, Any]:
    """The document, built once per process."""
    return build_document()


@bp.get("/openapi.json")
def openapi_json() -> Response:
    """Serve the document (no authentication: it holds no secrets)."""
    return jsonify(document())
