"""W3C ``traceparent`` parsing and the spans built on it (``workflows.tracing``)."""

from __future__ import annotations

import json
import logging

import pytest

from workflows import logs, tracing

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def test_a_valid_traceparent_names_its_trace_span_and_flags() -> None:
    parent = tracing.parse(f"00-{TRACE}-{SPAN}-01")
    assert parent == tracing.Parent(TRACE, SPAN, "01")


def test_a_later_version_may_append_fields() -> None:
    parent = tracing.parse(f"cc-{TRACE}-{SPAN}-00-what-comes-next")
    assert parent is not None and parent.trace_id == TRACE


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"ff-{TRACE}-{SPAN}-01",  # version ff is forbidden
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"0-{TRACE}-{SPAN}-01",
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE.upper()}-{SPAN}-01",  # uppercase hex
        f"00-{TRACE}-{SPAN.upper()}-01",
        f"00-{TRACE[:-1]}-{SPAN}-01",  # too short
        f"00-{TRACE}x-{SPAN}-01",
        f"00_{TRACE}_{SPAN}_01",
        f"00-{TRACE}-{SPAN}-1",
        "00-" + "z" * 32 + f"-{SPAN}-01",
        "x" * 1000,
    ],
)
def test_an_invalid_traceparent_is_none(header: str | None) -> None:
    assert tracing.parse(header) is None


def test_a_child_continues_the_parents_trace_in_a_new_span() -> None:
    span = tracing.child_of(f"00-{TRACE}-{SPAN}-01")
    assert (span.trace_id, span.parent_id) == (TRACE, SPAN)
    assert len(span.span_id) == 16 and span.span_id != SPAN
    assert span.traceparent == f"00-{TRACE}-{span.span_id}-01"
    assert tracing.parse(span.traceparent) is not None


def test_without_a_valid_parent_a_new_trace_is_minted() -> None:
    first, second = tracing.child_of("garbage"), tracing.child_of(None)
    assert first.parent_id is None and first.trace_id != second.trace_id
    assert tracing.parse(first.traceparent) is not None


def test_a_stored_trace_id_wins_over_a_parent_of_another_trace() -> None:
    other = "a" * 32
    span = tracing.child_of(f"00-{TRACE}-{SPAN}-01", trace_id=other)
    assert (span.trace_id, span.parent_id) == (other, None)
    same = tracing.child_of(f"00-{TRACE}-{SPAN}-01", trace_id=TRACE)
    assert same.parent_id == SPAN


def test_headers_name_the_current_span_and_nothing_outside_one() -> None:
    assert tracing.headers() == {}
    with tracing.running(tracing.child_of(None)) as span:
        assert tracing.headers() == {"traceparent": span.traceparent}
        assert tracing.current_trace_id() == span.trace_id
    assert tracing.current() is None


def test_every_log_line_in_a_span_carries_its_ids() -> None:
    record = logging.LogRecord("herald", logging.INFO, "", 0, "x", None, None)
    formatter = logs.JsonFormatter()
    assert "trace_id" not in json.loads(formatter.format(record))
    with tracing.running(tracing.child_of(f"00-{TRACE}-{SPAN}-01")) as span:
        line = json.loads(formatter.format(record))
    assert (line["trace_id"], line["span_id"]) == (TRACE, span.span_id)
