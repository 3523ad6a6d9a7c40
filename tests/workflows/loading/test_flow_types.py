"""Flow-control task types at load time: each is built with its expressions compiled, and
every mistake in one is refused with file, line, path and a message."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workflows.conftest import MakeProject
from workflows.errors import DefinitionError, Problem
from workflows.loading.loader import load_project

NOTIFY = 'tool(global::tools.#(id=="notify"))'


def errors_of(root: Path) -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        load_project(root)
    return [p for p in caught.value.problems if not p.warning]


ROUTER = f"""\
id: wf
tasks:
  - id: pick
    type: router
    condition: input.country
    routes: {{US: us, CA: ca}}
    default: other
  - id: us
    $use: {NOTIFY}
  - id: ca
    $use: {NOTIFY}
  - id: other
    $use: {NOTIFY}
"""


def test_a_router_loads_with_its_condition_compiled(make_project: MakeProject) -> None:
    project = load_project(make_project({"wf.yaml": ROUTER}))

    pick = project.workflows["wf"].task("pick")
    assert (pick.type, pick.uses, pick.settles_alone) == ("router", "none", True)
    assert pick.router is not None
    assert dict(pick.router.routes) == {"US": "us", "CA": "ca"}
    assert pick.router.default == "other"
    assert pick.router.condition.evaluate({"input": {"country": "CA"}}) == "CA"
    assert project.warnings == ()  # routes and default count as paths: every task is reached


# fmt: off
BROKEN: list[tuple[str, str, int, str, str]] = [
    # (case, workflow file, line, path, message fragment)
    (
        "condition syntax error",
        ROUTER.replace("condition: input.country", "condition: input.country =="),
        5, "tasks[0].condition",
        "expression syntax error at column 17: mismatched input '<EOF>'",
    ),
    (
        "condition reads an unknown variable",
        ROUTER.replace("condition: input.country", "condition: payload.country"),
        5, "tasks[0].condition",
        "unknown variable 'payload' in expression 'payload.country' (variables here: input, "
        "tasks, event, error)",
    ),
    (
        "item is not offered outside a collection",
        ROUTER.replace("condition: input.country", "condition: item.country"),
        5, "tasks[0].condition",
        "unknown variable 'item'",
    ),
    (
        "condition reads a task that does not exist",
        ROUTER.replace("condition: input.country", 'condition: tasks["nope"].output.x'),
        5, "tasks[0].condition",
        "expression reads tasks.nope, and there is no task 'nope' (tasks: pick, us, ca, other)",
    ),
    (
        "a route to no task",
        ROUTER.replace("CA: ca}", "CA: canada}"),
        6, "tasks[0].routes.CA",
        "route 'CA' names no task: 'canada' (tasks: pick, us, ca, other)",
    ),
    (
        "a default to no task",
        ROUTER.replace("default: other", "default: elsewhere"),
        7, "tasks[0].default",
        "default names no task: 'elsewhere'",
    ),
    (
        "no routes",
        ROUTER.replace("routes: {US: us, CA: ca}", "routes: {}"),
        6, "tasks[0].routes",
        "a router needs at least one route",
    ),
    (
        "missing condition",
        ROUTER.replace("    condition: input.country\n", ""),
        3, "tasks[0]",
        "missing required key 'condition'",
    ),
    (
        "a router runs nothing",
        ROUTER.replace("default: other", f"default: other\n    $use: {NOTIFY}"),
        8, "tasks[0].$use",
        "unknown key '$use'; expected one of: condition, default, id, on_error, routes, type",
    ),
    (
        "a router's next is its routes",
        ROUTER.replace("default: other", "default: other\n    on_success: {next: us}"),
        8, "tasks[0].on_success",
        "unknown key 'on_success'",
    ),
    (
        "a route to something that is not a task id",
        ROUTER.replace("CA: ca}", "CA: [ca]}"),
        6, "tasks[0].routes.CA",
        "must be a string, not a list",
    ),
]
# fmt: on


@pytest.mark.parametrize(
    ("text", "line", "path", "message"), [pytest.param(*c[1:], id=c[0]) for c in BROKEN]
)
def test_a_broken_flow_task_is_refused_with_file_line_and_message(
    make_project: MakeProject, text: str, line: int, path: str, message: str
) -> None:
    problems = errors_of(make_project({"wf.yaml": text}))

    assert len(problems) == 1, "\n".join(str(p) for p in problems)
    assert (problems[0].file, problems[0].line, problems[0].path) == ("wf.yaml", line, path)
    assert message in problems[0].message
