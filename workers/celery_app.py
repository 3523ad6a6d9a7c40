"""The Celery app, configured with herald's baseline; apart from the task bodies.

The API imports this module to publish tasks by name (``send_task``); only a
worker imports the task bodies (through ``include``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from celery import Celery

from workflows import tracing
from workflows.engine.messages import HARD_LIMIT_GRACE, MAX_COUNTDOWN, Dispatch, Message, Publish
from workflows.settings import Settings

DISPATCH_TASK = "herald.dispatch_event"
#: one message for the events of a batch (``POST /api/v1/events/batch``)
DISPATCH_BATCH_TASK = "herald.dispatch_events"
STEP_TASK = "herald.run_step"
AGENT_STEP_TASK = "herald.run_agent_step"
SWEEP_TASK = "herald.sweep"
#: headers of a step's run message naming its workflow and task (a hint its claim checks)
WORKFLOW_HEADER = "herald_workflow"
TASK_HEADER = "herald_task"


@dataclass(frozen=True)
class Queues:
    """The queue names, apart so that dispatch, fast steps and slow agent calls scale apart."""

    dispatch: str
    steps: str
    agents: str

    @classmethod
    def for_prefix(cls, prefix: str) -> Queues:
        """``<prefix>.dispatch``, ``<prefix>.steps``, ``<prefix>.agents``."""
        return cls(f"{prefix}.dispatch", f"{prefix}.steps", f"{prefix}.agents")

    @property
    def all(self) -> tuple[str, str, str]:
        """Every queue, in the order a worker consumes them by default."""
        return (self.dispatch, self.steps, self.agents)


def _tolerate_a_released_redis_connection() -> None:
    """Work around a kombu bug that kills a worker when Redis goes away (kombu 5.7).

    On a lost broker connection Celery closes it; closing a channel that holds
    unacknowledged messages tries to restore them through the transport, whose
    connection may have been released already (``transport.client`` is None):
    kombu then raises ``AttributeError`` instead of a connection error, Celery
    calls it an unrecoverable error and the worker exits, with every other
    worker that held a message (seen in the chaos test: a Redis restart stopped
    both workers). Raising a connection error there lets Celery reconnect as it
    does for any other broker outage; the messages stay unacknowledged in Redis
    until their visibility timeout (a step they name is recovered by the sweep).
    """
    from kombu.transport import redis as kombu_redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    channel: Any = kombu_redis.Channel
    if getattr(channel._connparams, "herald_tolerant", False):
        return
    original: Any = channel._connparams

    def _connparams(self: Any, asynchronous: bool = False) -> Any:
        if self.connection is None or self.connection.client is None:
            logging.getLogger("herald.broker").warning(
                "the broker connection was released while closing a channel; reconnecting"
            )
            raise RedisConnectionError("the broker connection was released")
        return original(self, asynchronous=asynchronous)

    _connparams.herald_tolerant = True  # type: ignore[attr-defined]
    channel._connparams = _connparams


def make_celery(settings: Settings, *, visibility_timeout: float | None = None) -> Celery:
    """A Celery app for ``settings`` with herald's baseline configuration.

    ``visibility_timeout`` matters to a consuming worker only (it is
    :func:`workflows.engine.messages.visibility_timeout` of its project);
    publishers keep ``HERALD_VISIBILITY_TIMEOUT``.
    """
    _tolerate_a_released_redis_connection()
    queues = Queues.for_prefix(settings.queue_prefix)
    app = Celery("herald", broker=settings.broker_url, include=["workers.tasks"])
    app.conf.update(
        # JSON only: state lives in Postgres, messages carry ids.
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        # At-least-once delivery; the database makes each effect happen once.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        # Redis hands an unacknowledged message out again after this long: never
        # less than a step may legitimately hold its message; long delays never
        # sit on Redis (they live in the database, see the sweep).
        broker_transport_options={
            "visibility_timeout": visibility_timeout or settings.visibility_timeout_seconds
        },
        task_default_queue=queues.steps,
        task_routes={
            DISPATCH_TASK: {"queue": queues.dispatch},
            DISPATCH_BATCH_TASK: {"queue": queues.dispatch},
            STEP_TASK: {"queue": queues.steps},
            AGENT_STEP_TASK: {"queue": queues.agents},
            SWEEP_TASK: {"queue": queues.dispatch},
        },
        # Task events on, so that Flower shows what ran.
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
    )
    app.herald_settings = settings  # type: ignore[attr-defined]
    app.herald_queues = queues  # type: ignore[attr-defined]
    return app


def step_task_name(uses: str) -> str:
    """The task that runs a step: agent calls go to their own queue, so slow ones starve nothing."""
    return AGENT_STEP_TASK if uses == "agent" else STEP_TASK


def publish_step(
    celery: Celery,
    step_id: str,
    *,
    uses: str,
    timeout: float,
    countdown: float = 0.0,
    workflow_id: str | None = None,
    task_id: str | None = None,
) -> None:
    """Publish one step's run message, with time limits from the task's timeout.

    The soft limit stops an in-process Python tool (``SoftTimeLimitExceeded`` in
    the prefork pool); the hard limit, :data:`HARD_LIMIT_GRACE` later, kills a
    pool process that ignores it. ``countdown`` is capped at :data:`MAX_COUNTDOWN`.
    ``workflow_id`` and ``task_id``, when known, travel as headers: the worker
    claims such a step in one statement (a worker that does not know them ignores them).
    """
    headers = tracing.headers()
    if workflow_id is not None and task_id is not None:
        headers = {**headers, WORKFLOW_HEADER: workflow_id, TASK_HEADER: task_id}
    celery.send_task(
        step_task_name(uses),
        args=[step_id],
        countdown=min(max(countdown, 0.0), MAX_COUNTDOWN) or None,
        soft_time_limit=timeout + 1.0,
        time_limit=timeout + HARD_LIMIT_GRACE,
        headers=headers,
    )


def publish_dispatch(celery: Celery, event_id: str) -> None:
    """Publish ``herald.dispatch_event(event_id)``."""
    celery.send_task(DISPATCH_TASK, args=[event_id], headers=tracing.headers())


def send(celery: Celery, message: Message) -> None:
    """Publish one message the engine returned, naming the current span as its parent."""
    if isinstance(message, Dispatch):
        publish_dispatch(celery, message.event_id)
        return
    assert isinstance(message, Publish)
    publish_step(
        celery,
        message.step_id,
        uses=message.uses,
        timeout=message.timeout,
        countdown=message.countdown,
        workflow_id=message.workflow_id,
        task_id=message.task_id,
    )
