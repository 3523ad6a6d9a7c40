"""Publishing work to Celery, always after the commit that made it durable.

The API only publishes ``herald.dispatch_event(event_id)``. When the broker is
unreachable the publish fails fast (no connection retries), the event stays
``accepted`` with ``publish_count`` 0, and the recovery sweep publishes it later.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from kombu.exceptions import KombuError
from redis.exceptions import RedisError
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.logs import log_event
from workers.celery_app import DISPATCH_TASK, make_celery
from workflows.settings import Settings
from workflows.store.models import Event

#: seconds to wait for the broker before giving up on one publish
CONNECT_TIMEOUT = 1.0


def make_publisher_celery(settings: Settings) -> Celery:
    """The Celery app the API publishes with: herald's baseline, failing fast on a dead broker."""
    celery = make_celery(settings)
    celery.conf.broker_connection_timeout = CONNECT_TIMEOUT
    celery.conf.broker_transport_options = {
        **celery.conf.broker_transport_options,
        # kombu: one connection attempt, not its default retry loop
        "max_retries": 0,
        # redis: do not hang on an unreachable host
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": 5.0,
    }
    return celery


class Publisher:
    """Publishes dispatch messages through Celery's producer pool and counts them."""

    def __init__(self, celery: Celery, sessions: sessionmaker[Session]) -> None:
        self.celery = celery
        self.sessions = sessions

    def dispatch(self, event_id: str, *, request_id: str | None = None) -> bool:
        """Publish ``herald.dispatch_event(event_id)``; ``False`` (logged) if the broker is down."""
        try:
            self.celery.send_task(DISPATCH_TASK, args=[event_id], retry=False)
        except (KombuError, RedisError, OSError) as exc:
            log_event(
                "event.publish_failed",
                level=logging.WARNING,
                event_id=event_id,
                request_id=request_id,
                reason=f"{exc.__class__.__name__}: {exc}",
            )
            return False
        self._count(event_id, request_id)
        return True

    def _count(self, event_id: str, request_id: str | None) -> None:
        """Record the publish on the event, so that the sweep knows it went out."""
        try:
            with self.sessions.begin() as session:
                session.execute(
                    update(Event)
                    .where(Event.id == event_id)
                    .values(publish_count=Event.publish_count + 1)
                )
        except SQLAlchemyError as exc:
            # The message is out; a lost count only makes the sweep publish it again,
            # which dispatch tolerates (execution ids were fixed at accept time).
            log_event(
                "event.publish_count_failed",
                level=logging.WARNING,
                event_id=event_id,
                request_id=request_id,
                reason=exc.__class__.__name__,
            )

    def broker_state(self) -> dict[str, Any]:
        """``{"ok": bool, "error": str | None}`` after one quick connection attempt."""
        try:
            with self.celery.connection_for_write() as conn:
                conn.ensure_connection(max_retries=0, timeout=CONNECT_TIMEOUT)
        except (KombuError, RedisError, OSError) as exc:
            return {"ok": False, "error": exc.__class__.__name__}
        return {"ok": True, "error": None}
