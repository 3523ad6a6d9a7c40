"""The workers' structured logs: one JSON object per line for each dispatch, step and sweep.

``log_event("step.finished", event_id=..., execution_id=..., task_id=...,
attempt=..., duration_ms=..., status=...)``; never a payload, a token or a key.
What happened is the line's ``kind`` field. Format and handler: :mod:`workflows.logs`.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from workflows import logs as shared

LOGGER = "herald.worker"
log = logging.getLogger(LOGGER)


def configure(level: str = "INFO") -> None:
    """Send the worker's structured records to stderr as JSON lines (once per process)."""
    log.propagate = False
    shared.configure(log, level, stream=sys.stderr)


def log_event(kind: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured line; ``kind`` names what happened (``step.finished``...)."""
    shared.emit(log, level, kind, fields)
