"""SQLAlchemy 2.0 models of herald's state: events, rejections, executions, steps, workers.

Portable between PostgreSQL (production) and SQLite (``herald dev``): JSON
columns become JSONB on PostgreSQL; times are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

JsonType = JSON().with_variant(JSONB(), "postgresql")
#: a JSON column whose None is SQL NULL (not JSON null), for columns tested with IS NULL
NullableJson = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC time on every database: SQLite gives naive times back, so
    without this a stored time cannot be compared with :func:`utcnow` (``herald dev``)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store UTC (SQLite keeps the wall time only)."""
        return value.astimezone(UTC) if value is not None and value.tzinfo else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Read back an aware UTC time."""
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def utcnow() -> datetime:
    """Now, timezone-aware, in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every herald table."""

    type_annotation_map = {
        dict[str, Any]: JsonType,
        list[Any]: JsonType,
        Any: JsonType,
        datetime: UtcDateTime(),
    }


class Event(Base):
    """An accepted event: committed before the API answers 202."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    payload: Mapped[Any]
    #: an EventStatus value
    status: Mapped[str] = mapped_column(String(16), index=True)
    #: the executions planned at accept time: [{"workflow_id", "version", "execution_id"}]
    routes: Mapped[list[Any]]
    #: the API token that sent it: what it may read back (workflows.store.visibility)
    token_name: Mapped[str] = mapped_column(String(100))
    client_addr: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    #: sha256 of the canonical request body, to tell a replay from a conflicting reuse
    request_hash: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    dispatched_at: Mapped[datetime | None]
    #: times the dispatch message was published (the recovery sweep adds to it)
    publish_count: Mapped[int] = mapped_column(Integer, default=0)
    #: when the sweep last published the dispatch (None: only the API did, at receipt)
    published_at: Mapped[datetime | None]
    #: the waiting steps it resumed when it was accepted: [{"execution_id", "step_id", "task_id"}]
    resumed: Mapped[list[Any] | None]
    #: subscribers whose trigger filter turned it away: [{"workflow_id", "trigger", "reason"}]
    filtered: Mapped[list[Any] | None] = mapped_column(NullableJson)
    #: the W3C trace it belongs to (32 hex; None for events stored before migration 0009)
    trace_id: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        UniqueConstraint("token_name", "idempotency_key", name="uq_events_token_idempotency"),
        # a token that reads only its own events lists them newest first
        Index("ix_events_token_name_id", "token_name", "id"),
    )


class Rejection(Base):
    """An event the API refused, kept for audit: who sent it and why it was refused."""

    __tablename__ = "rejections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    event_name: Mapped[str | None] = mapped_column(String(255))
    token_name: Mapped[str | None] = mapped_column(String(100))
    client_addr: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[Any | None]


class Execution(Base):
    """One run of one workflow, started by one event."""

    __tablename__ = "executions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_id: Mapped[str | None] = mapped_column(ForeignKey("events.id"), index=True)
    workflow_id: Mapped[str] = mapped_column(String(255), index=True)
    workflow_version: Mapped[str] = mapped_column(String(64), default="")
    #: an ExecutionStatus value
    status: Mapped[str] = mapped_column(String(16), index=True)
    input: Mapped[Any]
    output: Mapped[Any | None]
    error: Mapped[Any | None]
    #: steps created so far (bounded by the workflow's max_steps)
    step_count: Mapped[int] = mapped_column(Integer, default=0)
    #: the replay that started it (None: started by the event's dispatch)
    replay_id: Mapped[str | None] = mapped_column(String(40))
    #: the execution of a later replay of the same event and workflow that replaces it
    superseded_by: Mapped[str | None] = mapped_column(String(40))
    #: the W3C trace of the request that started it: its event's, or its replay request's
    trace_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class Replay(Base):
    """An event started again: who asked, when, how, and the executions it started."""

    __tablename__ = "replays"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), index=True)
    #: ``all`` or ``failed``
    mode: Mapped[str] = mapped_column(String(16))
    token_name: Mapped[str] = mapped_column(String(100))
    request_id: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    #: [{"workflow_id", "execution_id", "replaces"}]
    executions: Mapped[list[Any]]


class Step(Base):
    """One visit of one task within an execution: recorded exactly once."""

    __tablename__ = "steps"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id"), index=True)
    task_id: Mapped[str] = mapped_column(String(255))
    #: the nth time this task runs in this execution (1-based; loops make it grow)
    visit: Mapped[int] = mapped_column(Integer, default=1)
    #: position of the step in its execution (1-based)
    seq: Mapped[int] = mapped_column(Integer)
    #: a StepStatus value
    status: Mapped[str] = mapped_column(String(16), index=True)
    #: attempts started (each claim that ran the tool or agent)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: times a worker died holding this step (capped by the redelivery cap)
    lost: Mapped[int] = mapped_column(Integer, default=0)
    #: the rendered ``with``
    input: Mapped[Any | None]
    output: Mapped[Any | None]
    error: Mapped[Any | None]
    #: the error that led into this step through on_error (``{{ .error }}``)
    cause: Mapped[Any | None]
    #: agent token usage and latency, tool metadata
    usage: Mapped[Any | None]
    #: ``<node name>/<pid>`` of the process that ran the latest attempt
    worker: Mapped[str | None] = mapped_column(String(255))
    #: the :class:`Worker` whose process claimed the latest attempt (its heartbeats vouch for it)
    worker_id: Mapped[str | None] = mapped_column(String(40))
    #: the broker message whose delivery claimed the latest attempt: only a redelivery of
    #: that very message may reclaim the step while it is running
    message_id: Mapped[str | None] = mapped_column(String(64))
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: not to be started before this time (retry backoff)
    not_before: Mapped[datetime | None]
    #: a running step whose lease has passed is presumed lost
    lease_until: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    #: times the run message was published (the recovery sweep adds to it)
    publish_count: Mapped[int] = mapped_column(Integer, default=0)
    #: the parallel step this step is a child of (None for a step of the workflow's chain)
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("steps.id", name="fk_steps_parent_id"), index=True
    )
    #: for a collection's child: its item, and the item's position in the collection's list
    item: Mapped[Any | None]
    item_index: Mapped[int | None] = mapped_column(Integer)
    #: for a ``wait`` step: the event name it awaits (its timeout is ``not_before``)
    wait_event: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        UniqueConstraint("execution_id", "task_id", "visit", name="uq_steps_visit"),
        UniqueConstraint("execution_id", "seq", name="uq_steps_seq"),
        Index("ix_steps_status_queued_at", "status", "queued_at"),
        # an arriving event finds the steps waiting for its name, and only those
        Index(
            "ix_steps_waiting_event",
            "wait_event",
            postgresql_where=text("status = 'waiting' AND wait_event IS NOT NULL"),
            sqlite_where=text("status = 'waiting' AND wait_event IS NOT NULL"),
        ),
    )


class Worker(Base):
    """One ``herald worker`` process, as its heartbeats describe it.

    The row is written when the worker starts, its ``last_seen_at`` every few
    seconds by a thread of the worker's main process, and ``stopped_at`` when it
    shuts down cleanly. A worker whose heartbeats stopped without ``stopped_at``
    died: the sweep requeues the steps it was running.
    """

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    #: the Celery node name (``herald-<random>@<host>``)
    hostname: Mapped[str] = mapped_column(String(255))
    #: the main process's id on its host
    pid: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(255))
    #: the Celery pool (prefork, threads, solo) and its size
    pool: Mapped[str] = mapped_column(String(16))
    concurrency: Mapped[int] = mapped_column(Integer)
    #: the queues it consumes
    queues: Mapped[list[Any]]
    #: the herald version it runs
    version: Mapped[str] = mapped_column(String(64))
    #: a WorkerStatus value
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    stopped_at: Mapped[datetime | None]
