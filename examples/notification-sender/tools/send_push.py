"""Send a push notification by writing it into the local outbox's ``push/`` folder.

Input: ``user`` (who gets it), ``title``, ``body``, optional ``data`` and ``outbox``
(else ``$EXAMPLES_OUTBOX``, else ``examples/.outbox``). Idempotent: the file is
named after the step's idempotency key.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any


def outbox_dir(input: dict[str, Any]) -> Path:
    """Where the examples write what they send: ``with.outbox``, ``$EXAMPLES_OUTBOX`` or default."""
    default = Path(__file__).resolve().parents[2] / ".outbox"
    return Path(input.get("outbox") or os.environ.get("EXAMPLES_OUTBOX") or default)


def run(input: dict[str, Any], context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the notification as JSON into ``<outbox>/push/``."""
    notification = {
        "user": str(input["user"]),
        "title": str(input["title"]),
        "body": str(input["body"]),
        "data": input.get("data") or {},
    }
    key = (context or {}).get("idempotency_key") or uuid.uuid4().hex
    folder = outbox_dir(input) / "push"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(notification, indent=2))
    tmp.replace(path)
    return {"sent": True, "channel": "push", "path": str(path)}
