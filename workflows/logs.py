"""Structured logs shared by the API and the workers: one JSON object per line.

Each call site names what happened (``event.routed``, ``step.finished``...), the
line's ``kind``, and gives fields; never a token, a payload or a key. The API and
the workers keep their own logger (see ``app.logs`` and ``workers.logs``); the line
format, the handler and the ``kind`` field are here.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from workflows import tracing

#: attributes every LogRecord has; anything else was passed through ``extra``
STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line: time, level, logger, message and the fields.

    Inside a span (:mod:`workflows.tracing`) the line also carries its
    ``trace_id`` and ``span_id``.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line for ``record``."""
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in STANDARD})
        span = tracing.current()
        if span is not None:
            line.setdefault("trace_id", span.trace_id)
            line.setdefault("span_id", span.span_id)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler on whatever ``sys.stderr`` is when a record is emitted."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        """The current standard error."""
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        """Ignored: the stream is always the current standard error."""


def configure(
    logger: logging.Logger, level: str, *, stream: TextIO | None = None
) -> logging.Logger:
    """Send ``logger``'s records as JSON lines, once per process, at ``level``.

    Without ``stream`` they go to whatever ``sys.stderr`` is at each record; a
    worker passes the real stderr, since Celery later replaces ``sys.stderr``
    with a proxy that would log each line a second time.
    """
    logger.setLevel(level.upper())
    if not any(getattr(h, "_herald", False) for h in logger.handlers):
        handler: logging.Handler = (
            logging.StreamHandler(stream) if stream is not None else StderrHandler()
        )
        handler.setFormatter(JsonFormatter())
        handler._herald = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    return logger


def emit(logger: logging.Logger, level: int, kind: str, fields: dict[str, Any]) -> None:
    """Log one structured line: ``kind`` as its message and its ``kind`` field, with ``fields``.

    Nothing is built when ``level`` is off; a field named like a LogRecord
    attribute (``created``, ``name``...) gets a trailing ``_`` instead of being refused.
    """
    if not logger.isEnabledFor(level):
        return
    extra = {"kind": kind}
    extra.update({(f"{key}_" if key in STANDARD else key): value for key, value in fields.items()})
    logger.log(level, kind, extra=extra)
