"""The API's structured logs: one JSON object per line on the ``herald`` logger.

Call sites log what happened and its fields (``log_event("event.routed",
event_id=..., request_id=..., workflows=[...])``); never a token or a payload.
What happened is the line's ``kind`` field. Format and handler: :mod:`workflows.logs`.
"""

from __future__ import annotations

import logging
from typing import Any

from workflows import logs as shared

LOGGER = "herald"
log = logging.getLogger(LOGGER)


def configure(level: str = "INFO") -> None:
    """Send the ``herald`` logger's records to stderr as JSON lines (once per process)."""
    shared.configure(log, level)


def log_event(kind: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured line; ``kind`` names what happened (``event.received``...)."""
    shared.emit(log, level, kind, fields)
