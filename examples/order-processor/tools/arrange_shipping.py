"""Arrange shipping: check the address, price the delivery, write a shipping label.

Input: ``order_id``, ``address`` (``{street, city, zipCode, country}``), ``items``,
optional ``outbox``. The label is written to ``<outbox>/shipping/<order_id>.txt``.
A country this shop does not ship to, or an incomplete address, is an error that
says which.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

RATES = {"US": 5.99, "CA": 9.99, "GB": 12.99, "DE": 12.99, "FR": 12.99}
FREE_SHIPPING_FROM = 50


class CannotShip(Exception):
    """The order cannot be shipped to the address given."""


def outbox_dir(input: dict[str, Any]) -> Path:
    """Where the examples write what they send: ``with.outbox``, ``$EXAMPLES_OUTBOX`` or default."""
    default = Path(__file__).resolve().parents[2] / ".outbox"
    return Path(input.get("outbox") or os.environ.get("EXAMPLES_OUTBOX") or default)


def run(input: dict[str, Any], context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Price the delivery and write the label; the tracking number is stable per order."""
    order_id, address = str(input["order_id"]), input["address"]
    missing = [k for k in ("street", "city", "zipCode", "country") if not address.get(k)]
    if missing:
        raise CannotShip(f"the shipping address has no {', '.join(missing)}")
    country = str(address["country"]).upper()
    if country not in RATES:
        raise CannotShip(f"we do not ship to {country}; we ship to {', '.join(sorted(RATES))}")
    subtotal = sum(float(i.get("price", 0)) * int(i.get("quantity", 1)) for i in input["items"])
    cost = 0.0 if subtotal >= FREE_SHIPPING_FROM and country == "US" else RATES[country]
    tracking = "HRLD" + hashlib.sha256(order_id.encode()).hexdigest()[:10].upper()

    folder = outbox_dir(input) / "shipping"
    folder.mkdir(parents=True, exist_ok=True)
    label = folder / f"{order_id}.txt"
    lines = [
        f"ORDER {order_id}",
        f"TRACKING {tracking}",
        address["street"],
        f"{address['zipCode']} {address['city']}",
        country,
    ]
    label.write_text("\n".join(lines) + "\n")
    return {"tracking": tracking, "carrier": "Herald Post", "cost": cost, "label": str(label)}
