"""The execution data the template tests render against."""

from __future__ import annotations

from typing import Any

CONTEXT: dict[str, Any] = {
    "input": {
        "orderId": "ord-1",
        "customerId": "cus-7",
        "name": "ada",
        "amount": 12.5,
        "count": 3,
        "paid": True,
        "note": None,
        "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}],
        "address": {"city": "Oslo"},
    },
    "tasks": {
        "check-inventory": {"output": {"ok": True, "missing": []}, "status": "succeeded"},
        "validate": {"output": "fine", "status": "succeeded", "error": None},
    },
    "error": {"type": "tool_error", "message": "card declined"},
    "event": {"id": "evt_1", "name": "order.created", "received_at": "2026-11-26T00:00:00Z"},
    "workflow": {"id": "order-processor", "version": "1"},
    "execution": {"id": "exe_1"},
}
