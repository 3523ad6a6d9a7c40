"""Gauges read when Prometheus scrapes: queue depths in Redis, workers in the database.

:class:`FleetCollector` asks at each scrape, cheaply (one pipelined ``LLEN`` per
queue key, one grouped ``SELECT``), and tolerates either store being down: the
gauge it cannot read is left out of that scrape and the reason logged, so
``GET /metrics`` still answers 200 with everything else.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import redis
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.logs import log_event
from workers.celery_app import Queues
from workflows.settings import Settings
from workflows.store import workers as fleet

#: kombu's Redis transport keeps a queue's priorities 3, 6 and 9 in keys of their own
_PRIORITY_KEYS = ("", "\x06\x163", "\x06\x166", "\x06\x169")
#: a scrape waits at most this long for Redis
_REDIS_TIMEOUT = 1.0


class FleetCollector(Collector):
    """``herald_queue_depth{queue}`` and ``herald_workers{state}``, read at scrape time."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.queues = Queues.for_prefix(settings.queue_prefix).all
        self._redis: redis.Redis | None = None

    def collect(self) -> Iterator[Metric]:
        """The gauges that could be read now."""
        depths = self.queue_depths()
        if depths is not None:
            gauge = GaugeMetricFamily(
                "herald_queue_depth",
                "Messages waiting in each herald queue of the broker (Redis LLEN).",
                labels=["queue"],
            )
            for queue, depth in depths.items():
                gauge.add_metric([queue], depth)
            yield gauge
        states = self.worker_states()
        if states is not None:
            gauge = GaugeMetricFamily(
                "herald_workers",
                "Workers in the workers table by state (alive, stale: presumed dead, stopped).",
                labels=["state"],
            )
            for state, count in sorted(states.items()):
                gauge.add_metric([state], count)
            yield gauge

    def queue_depths(self) -> dict[str, int] | None:
        """Messages waiting per queue; ``None`` (logged) when Redis cannot say."""
        if not self.settings.broker_url.startswith(("redis://", "rediss://", "unix://")):
            return None  # an in-process broker (herald dev) has no queue keys to read
        try:
            client = self._client()
            pipe = client.pipeline(transaction=False)
            for queue in self.queues:
                for suffix in _PRIORITY_KEYS:
                    pipe.llen(queue + suffix)
            lengths = [int(n) for n in pipe.execute()]
        except (RedisError, OSError) as exc:
            log_event(
                "metrics.queue_depth_failed", level=logging.WARNING, reason=type(exc).__name__
            )
            return None
        per = len(_PRIORITY_KEYS)
        return {q: sum(lengths[i * per : (i + 1) * per]) for i, q in enumerate(self.queues)}

    def worker_states(self) -> dict[str, int] | None:
        """Workers per state; ``None`` (logged) when the database cannot say."""
        try:
            with Session(self.engine) as session:
                return fleet.count_by_state(
                    session,
                    now=datetime.now(UTC),
                    dead_after=self.settings.worker_dead_after_seconds,
                )
        except SQLAlchemyError as exc:
            log_event("metrics.workers_failed", level=logging.WARNING, reason=type(exc).__name__)
            return None

    def _client(self) -> redis.Redis:
        if self._redis is None:
            self._redis = redis.Redis.from_url(
                self.settings.broker_url,
                socket_timeout=_REDIS_TIMEOUT,
                socket_connect_timeout=_REDIS_TIMEOUT,
            )
        return self._redis
