"""``GET /metrics``: the API's Prometheus metrics as text (scope ``metrics:read``).

Under gunicorn with several workers, set ``PROMETHEUS_MULTIPROC_DIR`` to an
empty directory writable by every worker before ``herald serve`` starts: each
scrape then adds up all of them (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import os

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from app.api.common import authorize

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    """Every metric of this API (of all its processes in multiprocess mode)."""
    authorize("metrics:read")
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
