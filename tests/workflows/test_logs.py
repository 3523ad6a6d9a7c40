"""The shared JSON log lines: the API's and the workers' both carry their kind as ``kind``."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from app import logs as app_logs
from workers import logs as worker_logs
from workflows import logs


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The worker logger's JSON lines, written to a buffer for the test."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    saved = worker_logs.log.level, app_logs.log.level, worker_logs.log.propagate
    worker_logs.log.propagate = False  # as a worker runs it: its lines are not the API's
    for logger in (worker_logs.log, app_logs.log):
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield out
    for logger, level in zip((worker_logs.log, app_logs.log), saved[:2], strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)
    worker_logs.log.propagate = saved[2]


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_worker_line_names_its_kind_and_fields(captured: io.StringIO) -> None:
    worker_logs.log_event("step.finished", step_id="stp_1", attempt=2, status="succeeded")
    (line,) = _lines(captured)
    assert line["logger"] == "herald.worker"
    assert line["kind"] == "step.finished" and line["message"] == "step.finished"
    assert (line["step_id"], line["attempt"], line["status"]) == ("stp_1", 2, "succeeded")
    assert line["level"] == "info" and "ts" in line


def test_api_line_names_its_kind_too(captured: io.StringIO) -> None:
    app_logs.log_event("event.routed", level=logging.WARNING, event_id="evt_1")
    (line,) = _lines(captured)
    assert (line["logger"], line["kind"], line["event_id"]) == ("herald", "event.routed", "evt_1")
    assert line["level"] == "warning"


def test_field_named_like_a_record_attribute_is_kept_renamed(captured: io.StringIO) -> None:
    worker_logs.log_event("sweep.finished", name="x", created=3)
    (line,) = _lines(captured)
    assert (line["name_"], line["created_"]) == ("x", 3)


def test_disabled_level_writes_nothing(captured: io.StringIO) -> None:
    worker_logs.log_event("step.finished", level=logging.DEBUG, step_id="stp_1")
    assert captured.getvalue() == ""


def test_configure_adds_one_handler_however_often_called() -> None:
    logger = logging.getLogger("herald.test-logs")
    try:
        logs.configure(logger, "warning")
        logs.configure(logger, "warning")
        assert len(logger.handlers) == 1 and logger.level == logging.WARNING
    finally:
        logger.handlers.clear()
