"""Publishing what the engine returned, after the commit that made it durable."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from workers.celery_app import send
from workers.logs import log_event
from workers.runtime import Runtime
from workflows.engine.messages import Dispatch, Message


def publish(rt: Runtime, messages: Iterable[Message]) -> int:
    """Publish every message; one that fails is logged and left to the recovery sweep.

    Returns how many were sent.
    """
    sent = 0
    for message in messages:
        try:
            send(rt.celery, message)
        except (KombuError, RedisError, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if isinstance(message, Dispatch):
                kind, what = "dispatch.publish_failed", {"event_id": message.event_id}
            else:
                kind, what = "step.publish_failed", {"step_id": message.step_id}
            log_event(kind, level=logging.WARNING, reason=reason, **what)
        else:
            sent += 1
    return sent
