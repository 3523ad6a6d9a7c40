"""Give back the stock a reservation of ``check_inventory`` took (when a later stage fails).

Input: ``reservation_id`` (the ``check-inventory`` step's output), optional ``outbox``.
Idempotent: releasing a reservation twice gives the stock back once.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any


def outbox_dir(input: dict[str, Any]) -> Path:
    """Where the examples keep their state: ``with.outbox``, ``$EXAMPLES_OUTBOX`` or default."""
    default = Path(__file__).resolve().parents[2] / ".outbox"
    return Path(input.get("outbox") or os.environ.get("EXAMPLES_OUTBOX") or default)


def run(input: dict[str, Any], context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Put the reserved quantities back on hand and forget the reservation."""
    key = str(input["reservation_id"])
    conn = sqlite3.connect(outbox_dir(input) / "stock.sqlite3", timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT items FROM reservations WHERE key = ?", (key,)).fetchone()
        if row is None:
            conn.execute("COMMIT")
            return {"released": []}
        items = json.loads(row[0])
        for item in items:
            conn.execute(
                "UPDATE stock SET on_hand = on_hand + ? WHERE product_id = ?",
                (item["quantity"], item["productId"]),
            )
        conn.execute("DELETE FROM reservations WHERE key = ?", (key,))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return {"released": items}
