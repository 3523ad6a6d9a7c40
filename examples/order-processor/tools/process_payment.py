"""Charge the customer: record the payment in a local ledger (SQLite), no real money moves.

Input: ``amount``, ``customer_id``, ``order_id``, optional ``outbox``. The ledger is
``<outbox>/payments.sqlite3``. Amounts above the example card limit are declined
(an error that says so), which takes the payment-error path.

Idempotent: the payment is keyed by the step's idempotency key, so a retried step
never charges twice; it returns the first charge again.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

CARD_LIMIT = 5000.0


class PaymentDeclined(Exception):
    """The (pretend) card issuer refused the charge."""


def outbox_dir(input: dict[str, Any]) -> Path:
    """Where the examples keep their state: ``with.outbox``, ``$EXAMPLES_OUTBOX`` or default."""
    default = Path(__file__).resolve().parents[2] / ".outbox"
    return Path(input.get("outbox") or os.environ.get("EXAMPLES_OUTBOX") or default)


def run(input: dict[str, Any], context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Record the charge once; decline amounts above the card limit."""
    amount = round(float(input["amount"]), 2)
    if amount <= 0:
        raise PaymentDeclined(f"cannot charge {amount}: the amount must be positive")
    if amount > CARD_LIMIT:
        raise PaymentDeclined(f"card declined: {amount:.2f} is above the limit of {CARD_LIMIT:.2f}")
    key = (context or {}).get("idempotency_key") or uuid.uuid4().hex
    payment_id = "pay_" + hashlib.sha256(key.encode()).hexdigest()[:16]

    folder = outbox_dir(input)
    folder.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(folder / "payments.sqlite3", timeout=30, isolation_level=None)
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS payments (id TEXT PRIMARY KEY, order_id TEXT,"
            " customer_id TEXT, amount REAL)"
        )
        inserted = conn.execute(
            "INSERT OR IGNORE INTO payments VALUES (?, ?, ?, ?)",
            (payment_id, str(input["order_id"]), str(input["customer_id"]), amount),
        ).rowcount
    finally:
        conn.close()
    return {
        "payment_id": payment_id,
        "amount": amount,
        "status": "captured",
        "duplicate": inserted == 0,
    }
