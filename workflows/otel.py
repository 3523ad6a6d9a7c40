"""Optional OpenTelemetry export: one span per API request, dispatch and step.

Off unless ``HERALD_OTEL_EXPORTER`` is ``console`` (spans as JSON on stdout, for
a look or a test) or ``otlp`` (the OTLP/HTTP exporter of the ``otel`` extra,
configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables). When it is off,
no ``opentelemetry`` module is imported. An exported span has herald's own ids
(:mod:`workflows.tracing`): the trace id an event answer and every log line
show, the span id a ``traceparent`` response header names, the caller's span as
its parent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import Any

from workflows.errors import ConfigError
from workflows.tracing import Span

ENV = "HERALD_OTEL_EXPORTER"
EXPORTERS = ("console", "otlp")

#: the ids the next span takes (read by the id generator, set just before it starts)
_NEXT: ContextVar[Span | None] = ContextVar("herald_otel_next", default=None)


def enabled() -> bool:
    """Whether spans are exported (``HERALD_OTEL_EXPORTER`` set)."""
    return bool(os.environ.get(ENV, "").strip())


@contextmanager
def exported(span: Span, name: str, **attributes: str) -> Iterator[None]:
    """Export ``span`` as ``name`` once the block ends (nothing when export is off)."""
    if not enabled():
        yield
        return
    tracer, context_of = _tracer()
    token = _NEXT.set(span)
    try:
        otel_span = tracer.start_span(name, context=context_of(span), attributes=attributes)
    finally:
        _NEXT.reset(token)
    try:
        yield
    finally:
        otel_span.end()


@cache
def _tracer() -> tuple[Any, Any]:
    """The tracer, and a function giving a span's parent context; set up once per process."""
    kind = os.environ.get(ENV, "").strip().lower()
    if kind not in EXPORTERS:
        raise ConfigError(f"{ENV} must be one of {', '.join(EXPORTERS)}, not {kind!r}")
    try:
        from opentelemetry import trace
    except ImportError:
        raise ConfigError(f"{ENV}={kind} needs OpenTelemetry: pip install 'herald[otel]'") from None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class HeraldIds(RandomIdGenerator):  # type: ignore[misc]
        """herald's ids for the span being started; random ones otherwise."""

        def generate_span_id(self) -> int:
            span = _NEXT.get()
            return int(span.span_id, 16) if span else int(super().generate_span_id())

        def generate_trace_id(self) -> int:
            span = _NEXT.get()
            return int(span.trace_id, 16) if span else int(super().generate_trace_id())

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "herald")})
    provider = TracerProvider(resource=resource, id_generator=HeraldIds())
    if kind == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))

    def context_of(span: Span) -> Any:
        if span.parent_id is None:
            return None
        parent = trace.SpanContext(
            trace_id=int(span.trace_id, 16),
            span_id=int(span.parent_id, 16),
            is_remote=True,
            trace_flags=trace.TraceFlags(int(span.flags, 16)),
        )
        return trace.set_span_in_context(trace.NonRecordingSpan(parent))

    return provider.get_tracer("herald"), context_of
