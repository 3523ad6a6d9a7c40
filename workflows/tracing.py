"""W3C Trace Context: the trace an event belongs to, from the API request to every step.

A request's ``traceparent`` header (``version-traceid-parentid-flags``, lowercase
hex, neither id all zeros) names the caller's trace and span; an absent or
invalid one starts a new trace (never a refusal). Each unit of work (an API
request, a dispatch, a step) runs in its own span of that trace, held in
:data:`CURRENT` for this thread or task: the log formatter adds its ids to every
line, the publisher puts it in the message headers, and the worker restores it
before running the message.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

#: the Celery message header (and HTTP header) carrying the context
HEADER = "traceparent"
_PARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


@dataclass(frozen=True)
class Span:
    """One unit of work in a trace: its ids, and the span that caused it (None for a root)."""

    trace_id: str
    span_id: str
    parent_id: str | None = None
    flags: str = "01"

    @property
    def traceparent(self) -> str:
        """The ``traceparent`` naming this span as the parent of what it causes."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


@dataclass(frozen=True)
class Parent:
    """A parsed ``traceparent``: the caller's trace, span and flags."""

    trace_id: str
    span_id: str
    flags: str


CURRENT: ContextVar[Span | None] = ContextVar("herald_trace", default=None)


def new_trace_id() -> str:
    """32 random lowercase hex digits, never all zeros."""
    return _nonzero(16)


def new_span_id() -> str:
    """16 random lowercase hex digits, never all zeros."""
    return _nonzero(8)


def _nonzero(size: int) -> str:
    while True:
        value = secrets.token_hex(size)
        if value.strip("0"):
            return value


def parse(header: str | None) -> Parent | None:
    """The parent a ``traceparent`` value names; None when absent or invalid.

    Version ``ff`` is invalid; version ``00`` has exactly four fields; a higher
    version may append fields after a ``-``. Uppercase hex is invalid.
    """
    if not header or len(header) > 512:
        return None
    match = _PARENT.fullmatch(header.strip(" \t"))
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return Parent(trace_id, span_id, flags)


def child_of(parent: Parent | str | None, *, trace_id: str | None = None) -> Span:
    """A new span under ``parent`` (a :class:`Parent` or a raw header); a new trace without one.

    ``trace_id`` (an event's or an execution's, as stored) wins over the parent's:
    the parent is kept only if it belongs to that trace.
    """
    if isinstance(parent, str) or parent is None:
        parent = parse(parent)
    if parent is not None and trace_id is not None and parent.trace_id != trace_id:
        parent = None
    if parent is None:
        return Span(trace_id or new_trace_id(), new_span_id())
    return Span(parent.trace_id, new_span_id(), parent.span_id, parent.flags)


def current() -> Span | None:
    """The span this code runs in, if any."""
    return CURRENT.get()


def current_trace_id() -> str | None:
    """The trace id this code runs in, if any."""
    span = CURRENT.get()
    return span.trace_id if span is not None else None


def headers() -> dict[str, str]:
    """Message headers naming the current span as the parent (empty outside any span)."""
    span = CURRENT.get()
    return {HEADER: span.traceparent} if span is not None else {}


@contextmanager
def running(span: Span) -> Iterator[Span]:
    """Run the block in ``span`` (its logs, its messages), then restore the previous one."""
    token = CURRENT.set(span)
    try:
        yield span
    finally:
        CURRENT.reset(token)
