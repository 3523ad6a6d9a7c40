"""Send an email by writing it as a ``.eml`` file into the local outbox (no mail server).

Input (the task's ``with``): ``recipient``, ``subject``, ``template`` (which text to
write: ``order_confirmation``, ``order_error``, ``inventory_error``, ``shipping_error``,
``payment_error``, ``order_notification``) and optional ``message``, ``error``, ``items``,
``data``. The outbox is ``with.outbox``, else ``$EXAMPLES_OUTBOX``, else
``examples/.outbox``; emails land in its ``email/`` folder.

Idempotent: the file is named after the step's idempotency key, so a retried or
redelivered step rewrites the same email instead of sending a second one.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

SENDER = "Herald Shop <orders@shop.example>"

INTROS = {
    "order_confirmation": "Thank you for your order. It is confirmed and on its way.",
    "order_notification": "We received your order and will keep you posted.",
    "order_error": "We could not process your order. Nothing was charged.",
    "inventory_error": "Some items of your order are not in stock. Nothing was charged.",
    "shipping_error": "We cannot ship your order to the address given. Nothing was charged.",
    "payment_error": "Your payment did not go through. Your order is on hold.",
}


def outbox_dir(input: dict[str, Any]) -> Path:
    """Where the examples write what they send: ``with.outbox``, ``$EXAMPLES_OUTBOX`` or default."""
    default = Path(__file__).resolve().parents[1] / ".outbox"
    return Path(input.get("outbox") or os.environ.get("EXAMPLES_OUTBOX") or default)


def run(input: dict[str, Any], context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the email into the outbox and say where it went."""
    template = str(input.get("template", "order_notification"))
    if template not in INTROS:
        raise ValueError(f"unknown email template {template!r}; known: {', '.join(INTROS)}")
    recipient, subject = str(input["recipient"]), str(input["subject"])

    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = recipient
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["X-Herald-Template"] = template
    message.set_content(_body(template, input))

    key = (context or {}).get("idempotency_key") or uuid.uuid4().hex
    folder = outbox_dir(input) / "email"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{template}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.eml"
    duplicate = path.exists()
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(bytes(message))
    tmp.replace(path)  # atomic: a reader never sees half an email
    return {
        "sent": True,
        "to": recipient,
        "subject": subject,
        "path": str(path),
        "duplicate": duplicate,
    }


def _body(template: str, input: dict[str, Any]) -> str:
    """The plain-text body: an intro, the optional message, error, items and data."""
    parts = [INTROS[template]]
    if input.get("message"):
        parts.append(str(input["message"]))
    if input.get("error"):
        parts.append(f"What went wrong: {_reason(input['error'])}")
    if input.get("items"):
        lines = [
            f"  - {i.get('quantity', 1)} x {i.get('name', i.get('productId'))}"
            for i in input["items"]
            if isinstance(i, dict)
        ]
        parts.append("Items:\n" + "\n".join(lines))
    if input.get("data") is not None:
        parts.append("Details:\n" + json.dumps(input["data"], indent=2, sort_keys=True))
    return "\n\n".join(parts) + "\n"


def _reason(error: Any) -> str:
    """The readable part of a step error: ``tool 'x' raised Declined: why`` becomes ``why``.

    A collection's error (``failed``: each failed item's error) gives each item's reason.
    """
    if not isinstance(error, dict):
        return str(error)
    if isinstance(error.get("failed"), dict) and error["failed"]:
        return "; ".join(_reason(e) for e in error["failed"].values())
    message = str(error.get("message", error))
    exception = error.get("exception")
    if exception and f"{exception}: " in message:
        return message.split(f"{exception}: ", 1)[1]
    return message
