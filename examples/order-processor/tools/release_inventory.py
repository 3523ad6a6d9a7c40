"""Give back the stock ``reserve_item`` took for an order (when a later stage fails).

Input: ``order_id``, optional ``reason`` (what made the order stop: it is handed on
in the output, for the email that follows) and ``outbox``. Idempotent: releasing an
order twice gives its stock back once.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any


def outbox_dir(input: dict[str, Any]) -> Path:
    """Where the examples keep their state: ``with.outbox``, ``$EXAMPLES_OUTBOX`` or default."""
    default = Path(__file__).resolve().parents[2] / ".outbox"
    return Path(input.get("outbox") or os.environ.get("EXAMPLES_OUTBOX") or default)


def run(input: dict[str, Any], context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Put every reserved quantity of the order back on hand and forget its reservations."""
    order_id = str(input["order_id"])
    path = outbox_dir(input) / "stock.sqlite3"
    released: list[dict[str, Any]] = []
    if path.exists():
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            rows = conn.execute(
                "SELECT product_id, quantity FROM reservations WHERE order_id = ? ORDER BY key",
                (order_id,),
            ).fetchall()
            for product_id, quantity in rows:
                conn.execute(
                    "UPDATE stock SET on_hand = on_hand + ? WHERE product_id = ?",
                    (quantity, product_id),
                )
                released.append({"productId": product_id, "quantity": quantity})
            conn.execute("DELETE FROM reservations WHERE order_id = ?", (order_id,))
            conn.execute("COMMIT")
        finally:
            conn.close()
    return {"released": released, "reason": input.get("reason")}
