"""Publishing work to Celery, always after the commit that made it durable.

The API publishes ``herald.dispatch_event(event_id)`` for each accepted event,
and the step the engine queued when an operator retries an execution. To keep one
transaction per event, the event is committed with ``publish_count`` 1 (the
publish that follows the commit); when the broker is unreachable the publish
fails fast (no connection retries), the count is put back to 0 and the event
stays ``accepted`` for the recovery sweep. A process that dies between the
commit and the publish leaves a count of 1 on an unpublished event: the sweep
still finds it (it is ``accepted``), one backoff period later.

After a failed publish the broker is presumed down for :data:`BROKER_COOLDOWN`
seconds: events accepted meanwhile are committed with ``publish_count`` 0 and
left to the sweep, so an outage costs one connection attempt, not one per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from celery import Celery
from kombu.exceptions import KombuError
from kombu.messaging import Producer
from redis.exceptions import RedisError
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.dispatchwire import RedisDispatch
from app.logs import log_event
from workers.celery_app import DISPATCH_BATCH_TASK, DISPATCH_TASK, make_celery, send
from workflows import tracing
from workflows.engine.messages import Publish
from workflows.settings import Settings
from workflows.store.models import Event

#: seconds to wait for the broker before giving up on one publish
CONNECT_TIMEOUT = 1.0
#: seconds to wait for the broker's answer to a publish
SOCKET_TIMEOUT = 5.0
#: seconds during which a broker that just refused is not tried again
BROKER_COOLDOWN = 2.0


def make_publisher_celery(settings: Settings) -> Celery:
    """The Celery app the API publishes with: herald's baseline, failing fast on a dead broker."""
    celery = make_celery(settings)
    # A "task-sent" event per publish doubles the broker round trips of every accepted
    # event; Flower still sees each dispatch through the worker's received/started events.
    celery.conf.task_send_sent_event = False
    celery.conf.broker_connection_timeout = CONNECT_TIMEOUT
    celery.conf.broker_transport_options = {
        **celery.conf.broker_transport_options,
        # kombu: one connection attempt, not its default retry loop
        "max_retries": 0,
        # redis: do not hang on an unreachable host
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": SOCKET_TIMEOUT,
    }
    return celery


@dataclass(frozen=True)
class Dispatching:
    """One accepted event's dispatch to publish, in the trace of the request that sent it."""

    event_id: str
    request_id: str | None
    #: the request's span: the dispatch's parent, and the span of what is logged about it
    span: tracing.Span | None = None

    @classmethod
    def now(cls, event_id: str, request_id: str | None) -> Dispatching:
        """The dispatch of ``event_id``, a child of the current span."""
        return cls(event_id, request_id, tracing.current())

    @property
    def headers(self) -> dict[str, str]:
        """The message headers: ``traceparent`` names the request's span."""
        return {tracing.HEADER: self.span.traceparent} if self.span is not None else {}


class Publisher:
    """Publishes dispatch messages through Celery's producer pool and counts them."""

    def __init__(self, celery: Celery, sessions: sessionmaker[Session]) -> None:
        self.celery = celery
        self.sessions = sessions
        self._down_until = 0.0
        #: dispatches pushed straight onto Redis (None: the broker is not plain Redis)
        self.direct = RedisDispatch.for_broker(
            celery,
            str(celery.conf.broker_url or ""),
            connect_timeout=CONNECT_TIMEOUT,
            timeout=SOCKET_TIMEOUT,
        )

    def available(self) -> bool:
        """Whether to try publishing now (``False`` shortly after the broker refused)."""
        return time.monotonic() >= self._down_until

    def dispatch(self, event_id: str, *, request_id: str | None = None) -> bool:
        """Publish ``herald.dispatch_event(event_id)``; ``False`` (logged) if the broker is down.

        The event was committed counting this publish; a failed one is uncounted.
        """
        try:
            self.celery.send_task(
                DISPATCH_TASK, args=[event_id], retry=False, headers=tracing.headers()
            )
        except (KombuError, RedisError, OSError) as exc:
            log_event(
                "event.publish_failed",
                level=logging.WARNING,
                event_id=event_id,
                request_id=request_id,
                reason=f"{exc.__class__.__name__}: {exc}",
            )
            self._down_until = time.monotonic() + BROKER_COOLDOWN
            self._uncount([event_id], request_id)
            return False
        return True

    def dispatch_each(self, dispatches: Sequence[Dispatching]) -> bool:
        """Publish one ``herald.dispatch_event`` per event, all in one round trip to a Redis
        broker (:mod:`app.dispatchwire`); ``False`` (logged) if the broker is down: every
        event uncounted.

        For the events of concurrent requests committed together (:mod:`app.groupcommit`):
        each message keeps its own request's trace.
        """
        try:
            if self.direct is not None:
                self.direct.push([(each.event_id, each.headers) for each in dispatches])
            else:
                self._send_each(dispatches)
        except (KombuError, RedisError, OSError) as exc:
            for each in dispatches:  # each logged in its own request's span
                with tracing.running(each.span) if each.span else nullcontext():
                    log_event(
                        "event.publish_failed",
                        level=logging.WARNING,
                        event_id=each.event_id,
                        request_id=each.request_id,
                        reason=f"{exc.__class__.__name__}: {exc}",
                    )
            self._down_until = time.monotonic() + BROKER_COOLDOWN
            self._uncount([each.event_id for each in dispatches], dispatches[0].request_id)
            return False
        return True

    def _send_each(self, dispatches: Sequence[Dispatching]) -> None:
        """Through Celery: one ``send_task`` each, buffered into one send where kombu can."""
        with self.celery.producer_or_acquire() as producer, _batched(producer):
            for each in dispatches:
                self.celery.send_task(
                    DISPATCH_TASK,
                    args=[each.event_id],
                    retry=False,
                    headers=each.headers,
                    producer=producer,
                )

    def dispatch_many(self, event_ids: list[str], *, request_id: str | None = None) -> bool:
        """Publish one ``herald.dispatch_events(event_ids)`` for a batch; ``False`` if the broker
        is down (every event uncounted, left to the sweep)."""
        try:
            self.celery.send_task(
                DISPATCH_BATCH_TASK, args=[event_ids], retry=False, headers=tracing.headers()
            )
        except (KombuError, RedisError, OSError) as exc:
            log_event(
                "event.publish_failed",
                level=logging.WARNING,
                event_ids=event_ids,
                request_id=request_id,
                reason=f"{exc.__class__.__name__}: {exc}",
            )
            self._down_until = time.monotonic() + BROKER_COOLDOWN
            self._uncount(event_ids, request_id)
            return False
        return True

    def step(self, message: Publish, *, request_id: str | None = None) -> bool:
        """Publish a step's run message; ``False`` (logged) if the broker is down.

        The step is durable already: the recovery sweep publishes it later.
        """
        try:
            send(self.celery, message)
        except (KombuError, RedisError, OSError) as exc:
            log_event(
                "step.publish_failed",
                level=logging.WARNING,
                step_id=message.step_id,
                request_id=request_id,
                reason=f"{exc.__class__.__name__}: {exc}",
            )
            return False
        return True

    def _uncount(self, event_ids: list[str], request_id: str | None) -> None:
        """The publish counted at commit did not happen: put the counts back."""
        try:
            with self.sessions.begin() as session:
                session.execute(
                    update(Event)
                    .where(Event.id.in_(event_ids), Event.publish_count > 0)
                    .values(publish_count=Event.publish_count - 1)
                )
        except SQLAlchemyError as exc:
            # The event is still ``accepted``: the sweep publishes it, a little later.
            log_event(
                "event.publish_count_failed",
                level=logging.WARNING,
                event_ids=event_ids,
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


@contextmanager
def _batched(producer: Producer) -> Iterator[None]:
    """Buffer the producer's publishes and send them at once on leaving (kombu 5.7's
    ``Producer.batch``: one pipeline on Redis); one by one with an older kombu."""
    batch = getattr(producer, "batch", None)
    with batch() if batch is not None else nullcontext():
        yield
