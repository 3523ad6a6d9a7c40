"""`herald validate`: load a project's definitions and say what is in them or what is wrong."""

from __future__ import annotations

from pathlib import Path

import click

from workflows.errors import DefinitionError
from workflows.model import Project, Task, Workflow
from workflows.registry import Definitions


@click.command("validate")
@click.option(
    "--project",
    "project_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="HERALD_PROJECT_DIR",
    default=Path("."),
    show_default="$HERALD_PROJECT_DIR or the current directory",
    help="The project directory.",
)
def command(project_dir: Path) -> None:
    """Check every workflow of a project; print them, or every error as file:line: path: message.

    Exits 0 when the project loads (warnings included), 1 when it does not.
    """
    try:
        definitions = Definitions.load(project_dir)
    except DefinitionError as exc:
        errors = [p for p in exc.problems if not p.warning]
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        click.echo(f"{len(errors)} error(s) in {project_dir}: nothing loaded", err=True)
        raise SystemExit(1) from None
    click.echo(describe(definitions.project))


def describe(project: Project) -> str:
    """A readable summary: each workflow with its triggers and tasks, then the warnings."""
    lines = [f"project {project.root} ({len(project.files)} file(s))"]
    for workflow in project.workflows.values():
        lines.extend(_workflow(workflow))
    for warning in project.warnings:
        lines.append(str(warning))
    count = len(project.workflows)
    lines.append(f"OK: {count} workflow(s), {len(project.warnings)} warning(s)")
    return "\n".join(lines)


def _workflow(workflow: Workflow) -> list[str]:
    version = f" {workflow.version}" if workflow.version else ""
    lines = [f"\nworkflow {workflow.id}{version}  ({workflow.location})"]
    if workflow.triggers:
        for trigger in workflow.triggers:
            schema = "with schema" if trigger.schema is not None else "no schema"
            lines.append(f"  trigger signal {trigger.name} ({schema})")
    else:
        lines.append("  no triggers")
    for task in workflow.tasks:
        delay = f" after {_seconds(task.delay)}" if task.delay and task.type != "sleep" else ""
        lines.append(f"  task {task.id}: {_runs(task)}{delay}{_transitions(task)}")
        for child in task.parallel.children if task.parallel is not None else ():
            lines.append(f"    task {child.short_id}: {_runs(child)}")
        if task.collection is not None:
            lines.append(f"    per {task.collection.item_var}: {_runs(task.collection.task)}")
    return lines


def _seconds(value: float) -> str:
    """``90`` -> ``1m30s``; ``604800`` -> ``7d``."""
    left, parts = int(value), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts) or f"{value:g}s"


def _runs(task: Task) -> str:
    if task.type == "sleep":
        return f"sleep {_seconds(task.delay)}"
    if task.signal is not None:
        return f"signal {task.signal.name}"
    if task.wait is not None:
        where = f" where {task.wait.condition.source}" if task.wait.condition is not None else ""
        until = f" for {_seconds(task.wait.timeout)}" if task.wait.timeout else ""
        return f"wait for {task.wait.event}{where}{until}"
    if task.collection is not None:
        found = task.collection
        items = found.items if isinstance(found.items, str) else found.items.source
        kept = f" if {found.filter.source}" if found.filter is not None else ""
        at_once = f", {found.max_workers} at once" if found.max_workers else ""
        return f"collection over {items}{kept} ({found.mode}{at_once})"
    if task.parallel is not None:
        limit = task.parallel.max_workers
        at_once = f", {limit} at once" if limit else ""
        count = len(task.parallel.children)
        return f"parallel {task.parallel.strategy} of {count} task(s){at_once}"
    if task.router is not None:
        return f"router on {task.router.condition.source}"
    if task.agent is not None:
        return f"agent {task.agent.id} action {task.action}"
    if task.tool is not None:
        return f"tool {task.tool.id} ({task.tool.execute})"
    return task.uses


def _transitions(task: Task) -> str:
    parts: list[str] = []
    if task.router is not None:
        parts.extend(f"{value} -> {target}" for value, target in task.router.routes.items())
        parts.append(f"default -> {task.router.default or 'error'}")
    if task.on_success:
        parts.append(f"success -> {task.on_success}")
    if task.wait is not None and task.wait.on_timeout:
        parts.append(f"timeout -> {task.wait.on_timeout}")
    if task.on_error:
        parts.append(f"error -> {task.on_error}")
    if task.final:
        parts.append("final")
    elif not task.on_success and task.router is None:
        parts.append("success -> end")
    return "  [" + ", ".join(parts) + "]"
