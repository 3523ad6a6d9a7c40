"""Check that every item of an order is in stock and reserve it, in a local SQLite file.

Input: ``items`` (the order's ``[{productId, quantity, ...}]``), optional ``outbox``.
The stock lives in ``<outbox>/stock.sqlite3`` (``with.outbox``, else
``$EXAMPLES_OUTBOX``, else ``examples/.outbox``), created on first use with the
catalog below: ``prod_003`` is sold out, so an order for it takes the
inventory-error path.

All or nothing: either every item is reserved or none is, and a missing item is an
error naming it. Idempotent: a reservation is keyed by the step's idempotency key,
so a retried step does not reserve twice.
"""

from __future__ import annotations

import json
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
    """Some items of the order cannot be reserved."""


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
    conn.execute("CREATE TABLE IF NOT EXISTS reservations (key TEXT PRIMARY KEY, items TEXT)")
    conn.executemany(
        "INSERT OR IGNORE INTO stock VALUES (?, ?, ?)",
        [(pid, name, qty) for pid, (name, qty) in CATALOG.items()],
    )
    return conn


def run(input: dict[str, Any], context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Reserve every item, or raise :class:`OutOfStock` naming what is missing."""
    key = (context or {}).get("idempotency_key") or uuid.uuid4().hex
    wanted = [(str(i["productId"]), int(i.get("quantity", 1))) for i in input["items"]]
    conn = open_stock(input)
    try:
        conn.execute("BEGIN IMMEDIATE")  # one writer at a time: no overselling
        done = conn.execute("SELECT items FROM reservations WHERE key = ?", (key,)).fetchone()
        if done is not None:
            conn.execute("COMMIT")
            return {"available": True, "reservation_id": key, "reserved": json.loads(done[0])}
        short = []
        for product_id, quantity in wanted:
            row = conn.execute(
                "SELECT on_hand FROM stock WHERE product_id = ?", (product_id,)
            ).fetchone()
            on_hand = 0 if row is None else row[0]
            if on_hand < quantity:
                short.append(f"{product_id} (wanted {quantity}, {on_hand} in stock)")
        if short:
            conn.execute("ROLLBACK")
            raise OutOfStock("not enough stock for " + ", ".join(short))
        for product_id, quantity in wanted:
            conn.execute(
                "UPDATE stock SET on_hand = on_hand - ? WHERE product_id = ?",
                (quantity, product_id),
            )
        reserved = [{"productId": p, "quantity": q} for p, q in wanted]
        conn.execute("INSERT INTO reservations VALUES (?, ?)", (key, json.dumps(reserved)))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return {"available": True, "reservation_id": key, "reserved": reserved}
