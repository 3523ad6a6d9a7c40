"""Send a text message by writing it into the local outbox's ``sms/`` folder (no carrier).

Input: ``to`` (a phone number or customer id), ``text``, optional ``outbox``
(else ``$EXAMPLES_OUTBOX``, else ``examples/.outbox``). Messages longer than one
SMS (160 characters) are refused. Idempotent: named after the step's idempotency key.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

MAX_LENGTH = 160


def outbox_dir(input: dict[str, Any]) -> Path:
    """Where the examples write what they send: ``with.outbox``, ``$EXAMPLES_OUTBOX`` or default."""
    default = Path(__file__).resolve().parents[2] / ".outbox"
    return Path(input.get("outbox") or os.environ.get("EXAMPLES_OUTBOX") or default)


def run(input: dict[str, Any], context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``{"to", "text"}`` as JSON into ``<outbox>/sms/``."""
    text = str(input["text"])
    if len(text) > MAX_LENGTH:
        raise ValueError(f"an SMS holds {MAX_LENGTH} characters; this one has {len(text)}")
    key = (context or {}).get("idempotency_key") or uuid.uuid4().hex
    folder = outbox_dir(input) / "sms"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"to": str(input["to"]), "text": text}, indent=2))
    tmp.replace(path)
    return {"sent": True, "channel": "sms", "path": str(path)}
