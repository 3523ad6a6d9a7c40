"""A workflow's tasks as an inline SVG: a small layered layout computed server-side.

Each task sits one layer below the deepest task that leads to it (the longest path
from the first task, loops broken where they turn back), so a chain reads top to
bottom; within a layer, tasks sit near the tasks they come from, and each row is
centred. ``on_success`` edges are solid, ``on_error`` ones dashed and red, a router's
routes solid with their values as labels, and a task going to the same next task
either way gets a single grey edge.
"""

from __future__ import annotations

from html import escape
from typing import Any

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 176, 32, 26, 44, 12
#: characters of a task id that fit in a box; longer ids end with an ellipsis
LABEL_CHARS = 26
#: the room a long edge takes in a layer it crosses
LANE_W = 14

Edge = tuple[str, str, str, str]  # (from, to, kind, label)


def edges(tasks: list[dict[str, Any]]) -> list[Edge]:
    """``(from, to, kind, label)`` for every transition to a task of the workflow.

    A task's ``routes`` (added by the dashboard from the loaded workflow: a router's
    ``{value: task}``, its default as ``"*"``) are edges of kind ``route``.
    """
    ids = {t["id"] for t in tasks}
    found: dict[tuple[str, str], list[str]] = {}
    labels: dict[tuple[str, str], list[str]] = {}
    for task in tasks:
        source = str(task["id"])
        for kind in ("on_success", "on_error"):
            target = task.get(kind)
            if kind == "on_success" and task.get("final"):
                continue
            if isinstance(target, str) and target in ids:
                found.setdefault((source, target), []).append(kind)
        for value, target in (task.get("routes") or {}).items():
            if target in ids:
                found.setdefault((source, target), []).append("route")
                labels.setdefault((source, target), []).append(str(value))
    result = []
    for (source, target), kinds in found.items():
        kind = "route" if "route" in kinds else kinds[0] if len(set(kinds)) == 1 else "always"
        result.append((source, target, kind, ", ".join(labels.get((source, target), []))))
    return result


def layers(tasks: list[dict[str, Any]], links: list[Edge]) -> dict[str, int]:
    """Each task's layer: the longest path to it from the first task, back edges left out."""
    order = [str(t["id"]) for t in tasks]
    nexts: dict[str, list[str]] = {name: [] for name in order}
    for source, target, _, _ in links:
        nexts[source].append(target)
    forward = _without_back_edges(order, nexts)
    depth = dict.fromkeys(order, 0)
    for name in _topological(order, forward):
        for target in forward[name]:
            depth[target] = max(depth[target], depth[name] + 1)
    return depth


def _without_back_edges(order: list[str], nexts: dict[str, list[str]]) -> dict[str, list[str]]:
    """The edges minus those closing a loop (found depth-first from the first task)."""
    forward: dict[str, list[str]] = {name: [] for name in order}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in order:
        if root in state:
            continue
        stack = [(root, iter(nexts[root]))]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                continue  # a loop back: left out of the layout
            else:
                forward[node].append(child)
                if child not in state:
                    state[child] = 1
                    stack.append((child, iter(nexts[child])))
    return forward


def _topological(order: list[str], forward: dict[str, list[str]]) -> list[str]:
    incoming = dict.fromkeys(order, 0)
    for targets in forward.values():
        for target in targets:
            incoming[target] += 1
    ready = [name for name in order if incoming[name] == 0]
    sorted_names = []
    while ready:
        name = ready.pop(0)
        sorted_names.append(name)
        for target in forward[name]:
            incoming[target] -= 1
            if incoming[target] == 0:
                ready.append(target)
    return sorted_names


def positions(
    tasks: list[dict[str, Any]], links: list[Edge]
) -> tuple[dict[str, tuple[int, int]], dict[tuple[str, str], list[int]]]:
    """Each task's box corner, and the x of the lane each long edge takes through the
    layers it crosses (so that it passes between boxes, not through them).

    Rows are ordered near the tasks (or lanes) they come from, then centred.
    """
    depth = layers(tasks, links)
    rows: dict[int, list[str]] = {}
    for task in tasks:
        rows.setdefault(depth[task["id"]], []).append(str(task["id"]))
    parents: dict[str, list[str]] = {}
    lanes: dict[tuple[str, str], list[str]] = {}
    for source, target, _, _ in links:
        if depth[source] >= depth[target]:
            continue
        previous = source
        for layer in range(depth[source] + 1, depth[target]):
            lane = f"\0{source}\0{target}\0{layer}"
            rows[layer].append(lane)
            lanes.setdefault((source, target), []).append(lane)
            parents[lane] = [previous]
            previous = lane
        parents.setdefault(target, []).append(previous)
    widths = {layer: _row_width(names) for layer, names in rows.items()}
    widest = max(widths.values(), default=BOX_W)
    centre: dict[str, float] = {}
    where: dict[str, tuple[int, int]] = {}
    for layer in sorted(rows):
        names = rows[layer]
        if layer:  # near the mean centre of what leads here (stable otherwise)
            names.sort(key=lambda n: _mean([centre[p] for p in parents.get(n, []) if p in centre]))
        x = PAD + (widest - widths[layer]) / 2
        for name in names:
            size = LANE_W if name.startswith("\0") else BOX_W
            centre[name] = x + size / 2
            where[name] = (round(x), PAD + layer * (BOX_H + GAP_Y))
            x += size + GAP_X
    boxes = {name: spot for name, spot in where.items() if not name.startswith("\0")}
    paths = {key: [round(centre[lane]) for lane in names] for key, names in lanes.items()}
    return boxes, paths


def _row_width(names: list[str]) -> float:
    sizes = [LANE_W if name.startswith("\0") else BOX_W for name in names]
    return sum(sizes) + GAP_X * (len(sizes) - 1)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("inf")


def svg(tasks: list[dict[str, Any]]) -> str:
    """The SVG markup (task ids escaped) of the tasks and their transitions."""
    links = edges(tasks)
    where, lanes = positions(tasks, links)
    width = max((x for x, _ in where.values()), default=PAD) + BOX_W + PAD + GAP_X
    height = max((y for _, y in where.values()), default=PAD) + BOX_H + PAD
    parts = [
        f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>'
        "</defs>",
    ]
    for source, target, kind, label in links:
        through = lanes.get((source, target), [])
        parts.append(_edge(where[source], where[target], through, kind, label))
    for task in tasks:
        x, y = where[task["id"]]
        name = str(task["id"])
        label = escape(name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1] + "…")
        final = " final" if task.get("final") else ""
        parts.append(
            f'<g class="task{final}"><rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" '
            f'rx="6"/><text x="{x + BOX_W // 2}" y="{y + BOX_H // 2 + 4}">{label}</text>'
            f"<title>{escape(name)} ({escape(str(task.get('type')))})</title></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _edge(
    start: tuple[int, int], end: tuple[int, int], through: list[int], kind: str, label: str
) -> str:
    """From the bottom of one box to the top of the next, down the lanes of the layers in
    between; a loop back (same layer or upwards) goes round by the right side."""
    (x1, y1), (x2, y2) = start, end
    if y2 > y1:
        points = [(x1 + BOX_W // 2, y1 + BOX_H)]
        for index, lane_x in enumerate(through, start=1):
            top = y1 + index * (BOX_H + GAP_Y)
            points += [(lane_x, top), (lane_x, top + BOX_H)]
        points.append((x2 + BOX_W // 2, y2))
        path = f"M{points[0][0]},{points[0][1]}"
        for (ax, ay), (bx, by) in zip(points[::2], points[1::2], strict=True):
            if (ax, ay) != points[0]:
                path += f" L{ax},{ay}"
            bend = (by - ay) / 2
            path += f" C{ax},{ay + bend} {bx},{by - bend} {bx},{by}"
        bx, by = points[-1]
    else:
        ax, ay, bx, by = x1 + BOX_W, y1 + BOX_H // 2, x2 + BOX_W, y2 + BOX_H // 2
        reach = GAP_X + abs(ay - by) / 4
        path = f"M{ax},{ay} C{ax + reach},{ay} {bx + reach},{by} {bx},{by}"
    line = f'<path class="edge {kind}" d="{path}" marker-end="url(#arrow)"/>'
    if not label:
        return line
    return line + f'<text class="route" x="{bx + 6}" y="{by - 6}">{escape(label)}</text>'
