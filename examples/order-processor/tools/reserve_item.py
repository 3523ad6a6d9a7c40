"""Reserve one item of an order in a local SQLite file (``reserve-stock`` runs it per item).

Input: ``order_id``, ``product_id``, ``quantity``, optional ``outbox``. The stock
lives in ``<outbox>/stock.sqlite3`` (``with.outbox``, else ``$EXAMPLES_OUTBOX``,
else ``examples/.outbox``), created on first use with the catalog below:
``prod_003`` is sold out, so an order for it takes the inventory-error path.

An item that is short is an error naming it, and reserves nothing. Idempotent: a
reservation is keyed by the step's idempotency key, so a retried or redelivered
step does not reserve twice. ``release_inventory`` gives back every reservation of
an order.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

CATALOG = {
    "prod_001": ("Wireless Headphones", 25),
    "prod_002": ("USB-C Cable", 100),
    "prod_003": ("Mechanical Keyboard", 0),
}


class OutOfStock(Exception):
    """The item cannot be reserved."""


def outbox_dir(input: dict[str, Any]) -> Path:
    """Where the examples keep their state: ``with.outbox``, ``$EXAMPLES_OUTBOX`` or default."""
    default = Path(__file__).resolve().parents[2] / ".outbox"
    return Path(input.get("outbox") or os.environ.get("EXAMPLES_OUTBOX") or default)


def open_stock(input: dict[str, Any]) -> sqlite3.Connection:
    """The stock database, created and filled with the catalog on first use."""
    folder = outbox_dir(input)
    folder.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(folder / "stock.sqlite3", timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS stock (product_id TEXT PRIMARY KEY, name TEXT, on_hand INT)"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS reservations "
        "(key TEXT PRIMARY KEY, order_id TEXT, product_id TEXT, quantity INT)"
    )
    conn.executemany(
        "INSERT OR IGNORE INTO stock VALUES (?, ?, ?)",
        [(pid, name, qty) for pid, (name, qty) in CATALOG.items()],
    )
    return conn


def run(input: dict[str, Any], context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Reserve the item, or raise :class:`OutOfStock` saying what is missing."""
    key = (context or {}).get("idempotency_key") or uuid.uuid4().hex
    order_id, product_id = str(input["order_id"]), str(input["product_id"])
    quantity = int(input.get("quantity", 1))
    reserved = {"reservation_id": key, "productId": product_id, "quantity": quantity}
    conn = open_stock(input)
    try:
        conn.execute("BEGIN IMMEDIATE")  # one writer at a time: no overselling
        done = conn.execute("SELECT 1 FROM reservations WHERE key = ?", (key,)).fetchone()
        if done is not None:
            conn.execute("COMMIT")
            return reserved
        row = conn.execute(
            "SELECT on_hand FROM stock WHERE product_id = ?", (product_id,)
        ).fetchone()
        on_hand = 0 if row is None else row[0]
        if on_hand < quantity:
            conn.execute("ROLLBACK")
            raise OutOfStock(
                f"not enough stock for {product_id} (wanted {quantity}, {on_hand} in stock)"
            )
        conn.execute(
            "UPDATE stock SET on_hand = on_hand - ? WHERE product_id = ?", (quantity, product_id)
        )
        conn.execute(
            "INSERT INTO reservations VALUES (?, ?, ?, ?)", (key, order_id, product_id, quantity)
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
    return reserved
