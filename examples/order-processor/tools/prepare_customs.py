"""Write the customs declaration of an order shipped abroad (the router sends CA, GB, DE, FR here).

Input: ``order_id``, ``country``, ``items``, optional ``outbox``. The declaration is
written to ``<outbox>/customs/<order_id>.txt``: one line per item with its value.
Idempotent: the same order always writes the same file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def outbox_dir(input: dict[str, Any]) -> Path:
    """Where the examples write what they send: ``with.outbox``, ``$EXAMPLES_OUTBOX`` or default."""
    default = Path(__file__).resolve().parents[2] / ".outbox"
    return Path(input.get("outbox") or os.environ.get("EXAMPLES_OUTBOX") or default)


def run(input: dict[str, Any], context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the declaration; its total value is the sum of the items' prices."""
    order_id, country = str(input["order_id"]), str(input["country"]).upper()
    lines = [f"CUSTOMS DECLARATION {order_id}", f"DESTINATION {country}"]
    total = 0.0
    for item in input["items"]:
        value = float(item.get("price", 0)) * int(item.get("quantity", 1))
        total += value
        name = item.get("name", item.get("productId"))
        lines.append(f"{item.get('quantity', 1)} x {name}: {value:.2f}")
    lines.append(f"TOTAL {total:.2f}")
    folder = outbox_dir(input) / "customs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{order_id}.txt"
    path.write_text("\n".join(lines) + "\n")
    return {"declaration": str(path), "country": country, "value": round(total, 2)}
