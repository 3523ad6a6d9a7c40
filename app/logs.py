"""Structured logging: one JSON object per line on the ``herald`` logger.

Call sites log an event kind and its fields (``log_event("event.routed",
event_id=..., request_id=..., workflows=[...])``); never a token or a payload.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

LOGGER = "herald"
log = logging.getLogger(LOGGER)

#: attributes every LogRecord has; anything else was passed through ``extra``
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line: time, level, logger, event, message and fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line for ``record``."""
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
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


def configure(level: str = "INFO") -> None:
    """Send the ``herald`` logger's records to stderr as JSON lines (once per process)."""
    logger = logging.getLogger(LOGGER)
    logger.setLevel(level.upper())
    if not any(getattr(h, "_herald", False) for h in logger.handlers):
        handler = StderrHandler()
        handler.setFormatter(JsonFormatter())
        handler._herald = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def log_event(event: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured line: ``event`` is its kind (``event.received``...)."""
    log.log(level, event, extra={"event": event, **fields})
