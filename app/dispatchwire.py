"""Dispatch messages written straight to the broker's Redis list, a group in one round trip.

Celery's ``send_task`` spends about 0.2 ms of CPU per message (routing, the producer
pool, kombu's publish path) before its one ``LPUSH``: as much as the rest of the
request's own work on the dispatch. The API sends one kind of message in bulk,
``herald.dispatch_event(event_id)`` to the dispatch queue, so it builds that
message itself, the way ``send_task`` would: the task message by Celery's own
``amqp.create_task_message`` (protocol 2), its body serialized by kombu, in the
envelope kombu's Redis transport stores (a JSON object, the body in base64), and
pushes the messages of a group commit (:mod:`app.groupcommit`) through one
pipeline. A worker cannot tell them from ``send_task``'s (a test compares them).

Only for a plain Redis broker whose messages kombu stores under the queue's name
(no key prefix, no priority); any other broker publishes through Celery.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import redis
from celery import Celery
from kombu.serialization import dumps as serialize
from kombu.utils.uuid import uuid
from redis.backoff import NoBackoff
from redis.retry import Retry

from workers.celery_app import DISPATCH_TASK

#: the transport options under which kombu stores a message elsewhere than the queue's list
_KEY_CHANGING = ("global_keyprefix", "priority_steps", "sep", "queue_order_strategy")


class RedisDispatch:
    """Pushes ``herald.dispatch_event`` messages onto the dispatch queue's Redis list."""

    def __init__(self, celery: Celery, client: redis.Redis) -> None:
        self.celery = celery
        self.client = client
        route = celery.amqp.router.route({}, DISPATCH_TASK)
        self.queue: str = route["queue"].name
        self._delivery_mode = route["queue"].exchange.delivery_mode or 2

    @classmethod
    def for_broker(
        cls, celery: Celery, broker_url: str, *, connect_timeout: float, timeout: float
    ) -> RedisDispatch | None:
        """The direct publisher for ``celery``'s broker, or ``None`` where Celery must publish."""
        options = celery.conf.broker_transport_options or {}
        if not broker_url.startswith("redis://") or any(k in options for k in _KEY_CHANGING):
            return None
        client = redis.Redis.from_url(
            broker_url,
            socket_connect_timeout=connect_timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # fail fast: the sweep publishes later
        )
        return cls(celery, client)

    def message(self, event_id: str, headers: dict[str, str]) -> bytes:
        """The bytes kombu would store for ``send_task(DISPATCH_TASK, args=[event_id])``."""
        task_id = uuid()
        task = self.celery.amqp.create_task_message(
            task_id,
            DISPATCH_TASK,
            [event_id],
            {},
            reply_to=self.celery.thread_oid,
            ignore_result=None,  # as send_task leaves it
        )
        task_headers: dict[str, Any] = {**task.headers, **headers}
        content_type, encoding, body = serialize(task.body, serializer="json")  # type: ignore[no-untyped-call]
        properties = {
            **task.properties,
            "delivery_mode": self._delivery_mode,
            "delivery_info": {"exchange": "", "routing_key": self.queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": uuid(),
        }
        raw = body.encode(encoding) if isinstance(body, str) else body
        envelope = {
            "body": base64.b64encode(raw).decode("ascii"),
            "content-encoding": encoding,
            "content-type": content_type,
            "headers": task_headers,
            "properties": properties,
        }
        return json.dumps(envelope).encode("utf-8")

    def push(self, messages: Sequence[tuple[str, dict[str, str]]]) -> None:
        """``LPUSH`` the dispatch of each ``(event_id, headers)``, in one round trip."""
        self.client.lpush(self.queue, *[self.message(e, h) for e, h in messages])

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()
