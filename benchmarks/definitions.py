"""Definitions micro-benchmarks: load a large project, validate a payload for many subscribers.

Runs in-process, on a generated project of ``workflows`` x ``tasks`` (the first
``subscribers`` workflows also listen to one shared event, each with a schema of
its own), through the same loader and registry as ``herald serve``.
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.errors import BenchmarkError
from benchmarks.project import FANOUT_EVENT, FANOUT_PAYLOAD, write_large_project
from benchmarks.results import DefinitionsBench
from benchmarks.stats import Summary
from workflows.loading.loader import load_project
from workflows.registry import TriggerRegistry


def measure_definitions(
    root: Path, workflows: int, tasks: int, subscribers: int, loads: int, validations: int
) -> DefinitionsBench:
    """Load the project ``loads`` times, then time ``validations`` single validations."""
    write_large_project(root, workflows, tasks, subscribers)
    load_ms, build_ms = [], []
    for _ in range(loads):
        start = time.perf_counter()
        project = load_project(root)
        loaded = time.perf_counter()
        registry = TriggerRegistry.build(project)
        load_ms.append((loaded - start) * 1000)
        build_ms.append((time.perf_counter() - loaded) * 1000)
    found = len(registry.subscribers(FANOUT_EVENT))
    if found != subscribers:
        raise BenchmarkError(f"{FANOUT_EVENT} has {found} subscribers, expected {subscribers}")
    errors = registry.validate(FANOUT_EVENT, FANOUT_PAYLOAD)
    if errors:
        raise BenchmarkError(f"the benchmark payload is invalid: {errors[0]}")
    validate_us = []
    for _ in range(validations):
        start = time.perf_counter_ns()
        registry.validate(FANOUT_EVENT, FANOUT_PAYLOAD)
        validate_us.append((time.perf_counter_ns() - start) / 1000)
    return DefinitionsBench(
        workflows=len(project.workflows),
        tasks_per_workflow=tasks,
        load_ms=Summary.of(load_ms),
        registry_build_ms=Summary.of(build_ms),
        subscribers=found,
        validate_us=Summary.of(validate_us),
    )
