"""Dispatch messages written straight to the broker's Redis list, a group in one round trip.

Celery's ``send_task`` spends about 0.2 ms of CPU per message (routing, the producer
pool, kombu's publish path) before its one ``LPUSH``: as much as the rest of the
request's own work on the dispatch. The API sends one kind of message in bulk,
``herald.dispatch_event(event_id)`` to the dispatch queue, so it builds that
message itself, the way ``send_task`` would: from a template that Celery's own
``amqp.create_task_message`` (protocol 2) built once, in the envelope kombu's Redis
transport stores (a JSON object, the body in base64), and pushes the messages of a
group commit (:mod:`app.groupcommit`) in one ``LPUSH``. A worker cannot tell them
from ``send_task``'s (a test compares them field by field).

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
        self._template()

    @classmethod
    def for_broker(
        cls, celery: Celery, broker_url: str, *, connect_timeout: float, timeout: float
    ) -> RedisDispatch | None:
        """The direct publisher for ``celery``'s broker, or ``None`` where Celery must publish."""
        options = celery.conf.broker_transport_options or {}
        plain = broker_url.startswith("redis://") and ";" not in broker_url  # no failover list
        if not plain or any(k in options for k in _KEY_CHANGING):
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
        task_headers: dict[str, Any] = {
            **self._headers,
            "id": task_id,
            "root_id": task_id,
            "argsrepr": repr([event_id]),
            **headers,
        }
        body = json.dumps([[event_id], *self._body_rest]).encode(self._encoding)
        envelope = {
            "body": base64.b64encode(body).decode("ascii"),
            "content-encoding": self._encoding,
            "content-type": self._content_type,
            "headers": task_headers,
            "properties": {
                **self._properties,
                "correlation_id": task_id,
                "delivery_tag": uuid(),
            },
        }
        return json.dumps(envelope).encode("utf-8")

    def _template(self) -> None:
        """One message built by Celery (``amqp.create_task_message``, as ``send_task`` does):
        what every dispatch shares. Per message only its ids, argument and trace differ."""
        sample = self.celery.amqp.create_task_message(
            "", DISPATCH_TASK, [""], {}, reply_to=self.celery.thread_oid, ignore_result=None
        )
        self._headers: dict[str, Any] = dict(sample.headers)
        self._body_rest: list[Any] = list(sample.body[1:])  # kwargs, then the embedded options
        content_type, encoding, _ = serialize(sample.body, serializer="json")  # type: ignore[no-untyped-call]
        self._content_type: str = content_type
        self._encoding: str = encoding
        self._properties: dict[str, Any] = {
            **sample.properties,
            "delivery_mode": self._delivery_mode,
            "delivery_info": {"exchange": "", "routing_key": self.queue},
            "priority": 0,
            "body_encoding": "base64",
        }

    def push(self, messages: Sequence[tuple[str, dict[str, str]]]) -> None:
        """``LPUSH`` the dispatch of each ``(event_id, headers)``, in one round trip."""
        self.client.lpush(self.queue, *[self.message(e, h) for e, h in messages])

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()
