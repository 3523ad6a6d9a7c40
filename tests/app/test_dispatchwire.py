"""The dispatch messages the API pushes onto Redis itself are the ones ``send_task`` would send."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
import redis
from sqlalchemy import Engine

from app.dispatchwire import RedisDispatch
from app.publish import CONNECT_TIMEOUT, Dispatching, Publisher, make_publisher_celery
from tests.app.conftest import closed_port
from workflows import tracing
from workflows.settings import Settings
from workflows.store.db import make_sessionmaker

pytestmark = pytest.mark.integration

#: what differs between any two messages: their own ids, and the trace's span
OWN = {"id", "root_id", "correlation_id", "delivery_tag", "traceparent"}


def without_ids(message: dict[str, Any]) -> dict[str, Any]:
    """The message with its ids left out and its body decoded."""
    return {
        **{k: v for k, v in message.items() if k not in ("headers", "properties", "body")},
        "headers": {k: v for k, v in message["headers"].items() if k not in OWN},
        "properties": {k: v for k, v in message["properties"].items() if k not in OWN},
        "body": json.loads(base64.b64decode(message["body"])),
    }


def test_a_pushed_dispatch_is_the_message_send_task_sends(
    redis_url: str, queue_prefix: str
) -> None:
    settings = Settings(broker_url=redis_url, queue_prefix=queue_prefix)
    publisher = Publisher(make_publisher_celery(settings), None)  # type: ignore[arg-type]
    assert publisher.direct is not None
    broker = redis.Redis.from_url(redis_url)
    queue = f"{queue_prefix}.dispatch"
    try:
        with tracing.running(tracing.child_of(None)):
            assert publisher.celery.send_task(  # Celery's own, as Publisher.dispatch sends it
                "herald.dispatch_event", args=["evt_1"], retry=False, headers=tracing.headers()
            )
            publisher.direct.push([("evt_1", tracing.headers()), ("evt_2", tracing.headers())])
        sent, first, second = (json.loads(broker.rpop(queue) or b"") for _ in range(3))
        assert broker.llen(queue) == 0
        assert without_ids(first) == without_ids(sent)
        assert without_ids(second)["body"][0] == ["evt_2"]  # pushed in order: FIFO for BRPOP
        assert first["headers"]["traceparent"] == sent["headers"]["traceparent"]
        assert first["headers"]["id"] == first["headers"]["root_id"]
        assert first["properties"]["correlation_id"] == first["headers"]["id"]
        assert first["headers"]["id"] != second["headers"]["id"]
    finally:
        broker.delete(queue)
        broker.close()
        publisher.direct.close()


def test_only_a_plain_redis_broker_is_pushed_to_directly() -> None:
    celery = make_publisher_celery(Settings(broker_url="memory://", queue_prefix="q"))
    memory = RedisDispatch.for_broker(celery, "memory://", connect_timeout=1, timeout=1)
    assert memory is None
    celery.conf.broker_transport_options = {"global_keyprefix": "x:"}
    prefixed = RedisDispatch.for_broker(
        celery, "redis://127.0.0.1:6379/0", connect_timeout=CONNECT_TIMEOUT, timeout=1
    )
    assert prefixed is None


def test_a_failed_push_logs_each_dispatch_in_its_own_requests_trace(clean_db: Engine) -> None:
    settings = Settings(broker_url=f"redis://127.0.0.1:{closed_port()}/0", queue_prefix="q")
    publisher = Publisher(make_publisher_celery(settings), make_sessionmaker(clean_db))
    spans = [tracing.child_of(None), tracing.child_of(None)]
    seen: list[tuple[str, str | None]] = []

    class Recording(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            span = tracing.current()
            seen.append((getattr(record, "event_id", ""), span.trace_id if span else None))

    handler = Recording()
    logging.getLogger("herald").addHandler(handler)
    try:
        ok = publisher.dispatch_each(
            [Dispatching("evt_a", "req_a", spans[0]), Dispatching("evt_b", "req_b", spans[1])]
        )
    finally:
        logging.getLogger("herald").removeHandler(handler)
    assert ok is False
    assert ("evt_a", spans[0].trace_id) in seen
    assert ("evt_b", spans[1].trace_id) in seen
    assert not publisher.available()  # the cool-down: the next events are left to the sweep
