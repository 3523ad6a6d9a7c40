"""Publishing what the engine returned, after the commit that made it durable."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from workers.celery_app import send
from workers.logs import log_event
from workers.runtime import Runtime
from workflows.engine.messages import Dispatch, Message


def publish(rt: Runtime, messages: Sequence[Message]) -> list[Message]:
    """Publish the messages in order; those not sent are logged and left to the recovery sweep.

    The first failure means the broker is unreachable: the rest are not tried.
    Returns the messages that were not sent.
    """
    for index, message in enumerate(messages):
        try:
            send(rt.celery, message)
        except (KombuError, RedisError, OSError) as exc:
            unsent = list(messages[index:])
            if isinstance(message, Dispatch):
                kind, what = "dispatch.publish_failed", {"event_id": message.event_id}
            else:
                kind, what = "step.publish_failed", {"step_id": message.step_id}
            log_event(
                kind,
                level=logging.WARNING,
                reason=f"{type(exc).__name__}: {exc}",
                unsent=len(unsent),
                **what,
            )
            return unsent
    return []
