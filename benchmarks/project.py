"""Generated projects: the no-op workflows the run drives, and a large one to load.

Everything is written as YAML a user could have written, so the benchmark goes
through the same loader, registry and engine as production.
"""

from __future__ import annotations

import json
from pathlib import Path

#: the event the 3-step workflow subscribes to (end to end, ingestion)
E2E_EVENT = "bench.e2e"
#: the event the K-step workflow subscribes to (drains)
DRAIN_EVENT = "bench.drain"
#: the event every subscriber of the large project listens to
FANOUT_EVENT = "bench.fanout"

NOOP_TOOL = '''"""A tool that does nothing, so that a benchmark times herald and not the tool."""


def run(input):
    """Return at once."""
    return {"ok": True}
'''

E2E_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {"n": {"type": "integer", "minimum": 0}, "label": {"type": "string"}},
    "required": ["n"],
}

#: a payload every schema below accepts
FANOUT_PAYLOAD: dict[str, object] = {
    "orderId": "o_1",
    "customerId": "c_1",
    "customerEmail": "someone@example.com",
    "totalAmount": 99.5,
    "currency": "EUR",
    "createdAt": "2026-01-01T12:00:00Z",
    "items": [{"productId": "p_1", "quantity": 2, "price": 49.75}],
    "tags": ["new", "web"],
}


def write_run_project(root: Path, drain_steps: int) -> Path:
    """The project the API and workers run: a 3-step and a ``drain_steps``-step no-op workflow."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "tools").mkdir(exist_ok=True)
    (root / "tools" / "noop.py").write_text(NOOP_TOOL, encoding="utf-8")
    (root / "herald.yaml").write_text(_project_file(), encoding="utf-8")
    docs = [
        _workflow("noop-3", [(E2E_EVENT, E2E_SCHEMA)], 3),
        _workflow(f"noop-{drain_steps}", [(DRAIN_EVENT, E2E_SCHEMA)], drain_steps),
    ]
    (root / "workflows.yaml").write_text("---\n".join(docs), encoding="utf-8")
    return root


def write_large_project(root: Path, workflows: int, tasks: int, subscribers: int) -> Path:
    """``workflows`` workflows of ``tasks`` tasks; the first ``subscribers`` share an event.

    Each subscriber has its own schema over :data:`FANOUT_PAYLOAD`, so validating
    a ``bench.fanout`` event checks ``subscribers`` different schemas.
    """
    if subscribers > workflows:
        raise ValueError("cannot have more subscribers than workflows")
    root.mkdir(parents=True, exist_ok=True)
    (root / "tools").mkdir(exist_ok=True)
    (root / "tools" / "noop.py").write_text(NOOP_TOOL, encoding="utf-8")
    (root / "herald.yaml").write_text(_project_file(), encoding="utf-8")
    for i in range(workflows):
        triggers = [(f"bench.large.w{i:03d}", E2E_SCHEMA)]
        if i < subscribers:
            triggers.append((FANOUT_EVENT, subscriber_schema(i)))
        path = root / "workflows" / f"w{i:03d}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(_workflow(f"large-{i:03d}", triggers, tasks), encoding="utf-8")
    return root


def subscriber_schema(i: int) -> dict[str, object]:
    """The ``i``-th subscriber's schema: each requires and constrains different fields."""
    item = {
        "type": "object",
        "properties": {
            "productId": {"type": "string", "pattern": "^p_[0-9]+$"},
            "quantity": {"type": "integer", "minimum": 1},
            "price": {"type": "number", "minimum": 0},
        },
        "required": ["productId", "quantity"],
    }
    properties: dict[str, object] = {
        "orderId": {"type": "string", "minLength": 1 + i % 2},
        "customerId": {"type": "string"},
        "customerEmail": {"type": "string", "format": "email"},
        "totalAmount": {"type": "number", "minimum": 0, "maximum": 10_000 + i},
        "currency": {"enum": ["EUR", "USD", "GBP"]},
        "createdAt": {"type": "string", "format": "date-time"},
        "items": {"type": "array", "minItems": 1, "items": item},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 10 + i},
    }
    names = sorted(properties)
    required = [names[(i + j) % len(names)] for j in range(3 + i % 4)]
    return {"type": "object", "properties": properties, "required": sorted(set(required))}


def _project_file() -> str:
    return (
        "defaults:\n"
        "  timeout: 30\n"
        "tools:\n"
        "  - id: noop\n"
        '    description: "does nothing"\n'
        "    execute: ./tools/noop.py\n"
    )


def _workflow(workflow_id: str, triggers: list[tuple[str, dict[str, object]]], steps: int) -> str:
    lines = [
        f"id: {workflow_id}",
        'version: "1.0.0"',
        f'description: "{steps} no-op steps"',
        "triggers:",
    ]
    for name, schema in triggers:
        lines += ["  - type: signal", f'    name: "{name}"', f"    schema: {json.dumps(schema)}"]
    lines.append("tasks:")
    for n in range(1, steps + 1):
        given = f".tasks.s{n - 1:02d}.output.ok" if n > 1 else ".input.n"
        lines += [
            f"  - id: s{n:02d}",
            "    type: basic",
            '    $use: tool(global::tools.#(id=="noop"))',
            "    with:",
            f'      given: "{{{{ {given} }}}}"',
        ]
        ending = f"    on_success:\n      next: s{n + 1:02d}" if n < steps else "    final: true"
        lines.append(ending)
    return "\n".join(lines) + "\n"
