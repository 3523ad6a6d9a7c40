"""An execution's steps as the timeline page shows them: nested, with a bar each.

The bar places a step's run on the execution's own time axis (from its start to its
end, or to now while it runs), so that the page shows at a glance which step took
the time and which ran side by side.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from workflows.model import ExecutionStatus, StepStatus


def when(moment: str) -> datetime:
    """An ISO time of the API as an aware datetime."""
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def stamp(moment: str | None) -> str:
    """An ISO time of the API as people read it: ``2026-01-31 12:00:00 UTC`` (to the second)."""
    if not moment:
        return ""
    return when(moment).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(started: str | None, finished: str | None) -> str:
    """``1.23 s`` between two ISO times of the API, or an empty string."""
    if not started or not finished:
        return ""
    spent = when(finished) - when(started)
    return f"{spent.total_seconds():.2f} s"


def settled(execution: dict[str, Any]) -> bool:
    """The execution has finished and so has each of its steps: nothing on the page changes
    any more (a step running when its execution was cancelled still finishes later)."""
    return ExecutionStatus(execution["status"]).finished and all(
        StepStatus(step["status"]).finished for step in execution["steps"]
    )


def steps(execution: dict[str, Any], now: datetime | None = None) -> list[dict[str, Any]]:
    """Top-level steps in order, each with ``children`` (its parallel or collection steps)
    and ``bar``: ``(left, width)`` in percent of the execution's time, or None if unstarted."""
    shown = execution["steps"]
    axis = _axis(execution, shown, now or datetime.now(UTC))
    children: dict[str, list[dict[str, Any]]] = {}
    for step in shown:
        if step["parent_id"]:
            children.setdefault(step["parent_id"], []).append({**step, "bar": _bar(step, axis)})
    return [
        {**step, "bar": _bar(step, axis), "children": children.get(step["id"], [])}
        for step in shown
        if not step["parent_id"]
    ]


def _axis(
    execution: dict[str, Any], shown: list[dict[str, Any]], now: datetime
) -> tuple[datetime, float, datetime] | None:
    """The execution's start, its length in seconds (at least a millisecond), and now."""
    starts = [when(s["started_at"]) for s in shown if s.get("started_at")]
    if execution.get("started_at"):
        starts.append(when(execution["started_at"]))
    if not starts:
        return None
    start = min(starts)
    ends = [when(s["finished_at"]) for s in shown if s.get("finished_at")]
    end = when(execution["finished_at"]) if execution.get("finished_at") else max([now, *ends])
    return start, max((end - start).total_seconds(), 0.001), now


def _bar(
    step: dict[str, Any], axis: tuple[datetime, float, datetime] | None
) -> tuple[float, float] | None:
    if axis is None or not step.get("started_at"):
        return None
    start, length, now = axis
    began = when(step["started_at"])
    ended = when(step["finished_at"]) if step.get("finished_at") else now
    left = min(max((began - start).total_seconds() / length * 100, 0.0), 99.5)
    width = min(max((ended - began).total_seconds() / length * 100, 0.5), 100.0 - left)
    return round(left, 2), round(width, 2)
