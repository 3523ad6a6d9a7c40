"""The workflows page's task graph (no browser): edges, layers, lanes, loops."""

from __future__ import annotations

import re
from typing import Any

from app.ui import graph


def task(name: str, **more: Any) -> dict[str, Any]:
    return {"id": name, "type": "basic", "on_success": None, "on_error": None, **more}


SHIPPING = [
    task("route", type="router", routes={"US": "ship", "CA": "customs", "FR": "customs"}),
    task("customs", on_success="ship", on_error="release"),
    task("ship", on_success="pay", on_error="release"),
    task("pay", final=True),
    task("release", final=True),
]


def test_a_routers_routes_are_edges_labelled_with_their_values() -> None:
    found = graph.edges(SHIPPING)
    assert ("route", "ship", "route", "US") in found
    assert ("route", "customs", "route", "CA, FR") in found
    assert ("customs", "release", "on_error", "") in found
    markup = graph.svg(SHIPPING)
    assert ">US</text>" in markup and ">CA, FR</text>" in markup


def test_a_task_sits_below_the_deepest_task_leading_to_it() -> None:
    depth = graph.layers(SHIPPING, graph.edges(SHIPPING))
    assert depth == {"route": 0, "customs": 1, "ship": 2, "pay": 3, "release": 3}


def test_a_long_edge_takes_a_lane_between_the_boxes_it_passes() -> None:
    boxes, lanes = graph.positions(SHIPPING, graph.edges(SHIPPING))
    (lane_x,) = lanes[("route", "ship")]  # crosses the customs layer
    customs_x, _ = boxes["customs"]
    assert not customs_x <= lane_x <= customs_x + graph.BOX_W


def test_the_same_next_task_either_way_is_one_grey_edge_and_final_tasks_lead_nowhere() -> None:
    tasks = [task("a", on_success="b", on_error="b"), task("b", final=True, on_success="a")]
    assert graph.edges(tasks) == [("a", "b", "always", "")]


def test_a_loop_is_drawn_without_hanging_and_long_ids_are_shortened() -> None:
    name = "x" * 40
    tasks = [task(name, on_success="check"), task("check", on_error=name)]
    markup = graph.svg(tasks)
    assert graph.layers(tasks, graph.edges(tasks)) == {name: 0, "check": 1}
    assert len(re.findall(r'<path class="edge', markup)) == 2
    assert "x" * 25 + "…" in markup and f"<title>{name} (basic)</title>" in markup
