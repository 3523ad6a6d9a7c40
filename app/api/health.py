"""``GET /health``: is the API usable, and are its dependencies reachable?

503 when the database is down (nothing can be accepted); a broker outage is
reported but answers 200, since accepted events are durable and published later.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.state import state

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> Response:
    """Each dependency's state; no authentication, so load balancers can ask."""
    st = state()
    database = "ok"
    try:
        with st.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        database = "unavailable"
    broker = "ok" if st.publisher.broker_state()["ok"] else "unavailable"
    status = "ok" if database == "ok" and broker == "ok" else "degraded"
    if database != "ok":
        status = "unavailable"
    response = jsonify({"status": status, "database": database, "broker": broker})
    response.status_code = 200 if database == "ok" else 503
    return response
