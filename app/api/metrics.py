"""``GET /metrics``: the API's Prometheus metrics as text (scope ``metrics:read``).

Under gunicorn with several workers, ``PROMETHEUS_MULTIPROC_DIR`` names an
empty directory every worker writes its counters to (``herald serve`` makes a
fresh one when it is unset): each scrape then adds up all of them
(prometheus_client's multiprocess mode). The gauges of :mod:`app.gauges` are
read at each scrape by the process that answers it.
"""

from __future__ import annotations

import os

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from app.api.common import authorize
from app.gauges import FleetCollector
from app.state import state

bp = Blueprint("metrics", __name__)

#: the app's own gauge collector, made on its first scrape
_GAUGES = "herald.gauges"


@bp.get("/metrics")
def metrics() -> Response:
    """Every metric of this API (of all its processes in multiprocess mode), and the gauges."""
    authorize("metrics:read")
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    gauges = current_app.extensions.get(_GAUGES)
    if gauges is None:
        st = state()
        gauges = current_app.extensions[_GAUGES] = CollectorRegistry(auto_describe=False)
        gauges.register(FleetCollector(st.settings, st.engine))
    text = generate_latest(registry) + generate_latest(gauges)
    return Response(text, mimetype=CONTENT_TYPE_LATEST)
