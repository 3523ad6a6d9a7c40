"""A workflow's tasks as an inline SVG: a simple layered layout computed server-side.

Each task sits in the layer one below the deepest task that leads to it
(breadth-first from the first task, so cycles do not loop); ``on_success``
edges are drawn solid, ``on_error`` ones dashed and red.
"""

from __future__ import annotations

from collections import deque
from html import escape
from typing import Any

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 150, 34, 30, 40, 10


def edges(tasks: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """``(from, to, kind)`` for every transition whose target is a task of the workflow."""
    ids = {t["id"] for t in tasks}
    found = []
    for task in tasks:
        for kind in ("on_success", "on_error"):
            targets = task.get(kind) or []
            for target in [targets] if isinstance(targets, str) else targets:
                name = target if isinstance(target, str) else (target or {}).get("task")
                if isinstance(name, str) and name in ids:
                    found.append((str(task["id"]), name, kind))
    return found


def layers(tasks: list[dict[str, Any]], links: list[tuple[str, str, str]]) -> dict[str, int]:
    """Each task's layer: its breadth-first distance from the first task (unreached: after)."""
    if not tasks:
        return {}
    nexts: dict[str, list[str]] = {}
    for source, target, _ in links:
        nexts.setdefault(source, []).append(target)
    depth = {tasks[0]["id"]: 0}
    queue = deque([tasks[0]["id"]])
    while queue:
        current = queue.popleft()
        for target in nexts.get(current, []):
            if target not in depth:
                depth[target] = depth[current] + 1
                queue.append(target)
    last = max(depth.values())
    for task in tasks:
        if task["id"] not in depth:
            last += 1
            depth[task["id"]] = last
    return depth


def svg(tasks: list[dict[str, Any]]) -> str:
    """The SVG markup (task ids escaped) of the tasks and their transitions."""
    links = edges(tasks)
    depth = layers(tasks, links)
    rows: dict[int, list[str]] = {}
    for task in tasks:
        rows.setdefault(depth[task["id"]], []).append(task["id"])
    where: dict[str, tuple[int, int]] = {}
    for layer, names in rows.items():
        for column, name in enumerate(names):
            where[name] = (PAD + column * (BOX_W + GAP_X), PAD + layer * (BOX_H + GAP_Y))
    width = PAD * 2 + max((len(n) for n in rows.values()), default=1) * (BOX_W + GAP_X)
    height = PAD * 2 + (max(rows, default=0) + 1) * (BOX_H + GAP_Y)
    parts = [
        f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>',
    ]
    for source, target, kind in links:
        (x1, y1), (x2, y2) = where[source], where[target]
        parts.append(
            f'<line class="{kind}" x1="{x1 + BOX_W // 2}" y1="{y1 + BOX_H}" '
            f'x2="{x2 + BOX_W // 2}" y2="{y2}" marker-end="url(#arrow)"/>'
        )
    for task in tasks:
        x, y = where[task["id"]]
        label = escape(task["id"][:22])
        final = " final" if task.get("final") else ""
        parts.append(
            f'<g class="task{final}"><rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" '
            f'rx="6"/><text x="{x + BOX_W // 2}" y="{y + BOX_H // 2 + 4}">{label}</text>'
            f"<title>{escape(task['id'])} ({escape(str(task.get('type')))})</title></g>"
        )
    parts.append("</svg>")
    return "".join(parts)
