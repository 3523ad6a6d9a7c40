"""Structured worker logs: one JSON object per line for each dispatch, step and sweep.

``log_event("step.finished", event_id=..., execution_id=..., task_id=...,
attempt=..., duration_ms=..., status=...)``; never a payload, a token or a key.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

LOGGER = "herald.worker"
log = logging.getLogger(LOGGER)

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line: time, level, logger, message and the fields."""

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


def configure(level: str = "INFO") -> None:
    """Send the worker's structured records to stderr as JSON lines (once per process)."""
    log.setLevel(level.upper())
    log.propagate = False
    if not any(getattr(h, "_herald", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._herald = True  # type: ignore[attr-defined]
        log.addHandler(handler)


def log_event(kind: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured line; ``kind`` names what happened (``step.finished``...)."""
    if not log.isEnabledFor(level):
        return
    # a field named like a LogRecord attribute (``created``...) would be refused
    safe = {(f"{key}_" if key in _STANDARD else key): value for key, value in fields.items()}
    log.log(level, kind, extra={"kind": kind, **safe})
