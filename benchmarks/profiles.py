"""Where the time goes: in-process cProfile runs of the two hot paths.

The POST handler runs through Flask's test client on the run's real database
and broker; the step function is the engine's ``run_step`` with a worker
runtime of its own, on steps that the profiled events created. Each path is
first timed without the profiler (the per-call figure), then profiled.
"""

from __future__ import annotations

import cProfile
import pstats
import re
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from benchmarks.errors import BenchmarkError
from benchmarks.project import E2E_EVENT
from benchmarks.results import HotPathProfile, ProfileEntry
from workflows.model import StepStatus
from workflows.settings import Settings
from workflows.store.models import Event, Step

TOP = 10
HERALD_PACKAGES = ("app/", "workers/", "workflows/")
REPO = Path(__file__).resolve().parents[1]
#: the part of a library file's path that says nothing: up to site-packages or the stdlib
LIBRARY = re.compile(r".*/(site-packages|lib/python3\.\d+)/")


def profile_post(settings: Settings, token: str, calls: int) -> HotPathProfile:
    """``POST /api/v1/events`` in-process: ``calls`` timed, then ``calls`` profiled."""
    from app import create_app

    client = create_app(settings).test_client()
    headers = {"Authorization": f"Bearer {token}"}
    body = {"name": E2E_EVENT, "payload": {"n": 1, "label": "profile"}}

    def post() -> None:
        response = client.post("/api/v1/events", json=body, headers=headers)
        if response.status_code != 202:
            raise BenchmarkError(f"in-process POST answered {response.status_code}")

    return _measure("POST /api/v1/events (in-process)", post, calls)


def profile_steps(settings: Settings, calls: int) -> HotPathProfile:
    """The engine's ``run_step`` on no-op steps: dispatch the accepted events, then run steps."""
    from workers import tasks
    from workers.runtime import Runtime
    from workflows.loading.loader import load_project

    rt = Runtime.create(settings, load_project(settings.project_dir), hostname="bench-profile")
    try:
        with rt.sessions() as session:
            event_ids = list(session.scalars(select(Event.id).order_by(Event.id)))
        for event_id in event_ids:
            tasks.dispatch(rt, event_id)
        queue: list[str] = []

        def run_one() -> None:
            if not queue:
                with rt.sessions() as session:
                    queued = select(Step.id).where(Step.status == StepStatus.QUEUED.value)
                    queue.extend(session.scalars(queued.order_by(Step.queued_at)))
            if not queue:
                raise BenchmarkError("no queued step left to profile: send more events first")
            tasks.run_step(rt, queue.pop(0), worker="bench-profile")

        return _measure("herald run_step, no-op tool (in-process)", run_one, calls)
    finally:
        rt.close()


def _measure(target: str, call: Callable[[], None], calls: int) -> HotPathProfile:
    for _ in range(min(20, calls)):  # warm caches and connection pools
        call()
    start = time.perf_counter()
    for _ in range(calls):
        call()
    per_call_us = (time.perf_counter() - start) / calls * 1e6
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        call()
    profiler.disable()
    entries = profile_entries(pstats.Stats(profiler))
    herald = [e for e in entries if e.function.startswith(HERALD_PACKAGES)]
    return HotPathProfile(
        target=target,
        calls=calls,
        per_call_us=per_call_us,
        herald=sorted(herald, key=lambda e: e.cumulative_ms, reverse=True)[:TOP],
        hottest=sorted(entries, key=lambda e: e.own_ms, reverse=True)[:TOP],
    )


def profile_entries(stats: pstats.Stats) -> list[ProfileEntry]:
    """Every function of a profile, named by its path in the repository or its library."""
    table = stats.stats  # type: ignore[attr-defined]
    return [
        ProfileEntry(
            function=_name(file, line, func),
            calls=int(ncalls),
            own_ms=round(own * 1000, 1),
            cumulative_ms=round(cumulative * 1000, 1),
        )
        for (file, line, func), (_, ncalls, own, cumulative, _) in table.items()
    ]


def _name(file: str, line: int, func: str) -> str:
    if file == "~":
        return func  # a builtin
    path = Path(file)
    if path.is_relative_to(REPO) and ".venv" not in path.parts:
        return f"{path.relative_to(REPO)}:{line}({func})"
    return f"{LIBRARY.sub('', file)}:{line}({func})"
