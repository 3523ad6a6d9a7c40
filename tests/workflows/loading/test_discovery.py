"""Discovery: which files of a project directory are workflow files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workflows.conftest import HERALD_YAML, MakeProject
from workflows.errors import DefinitionError
from workflows.loading.discovery import discover, glob_problem, glob_regex
from workflows.loading.loader import load_project


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("**/*.yaml", "a.yaml", True),
        ("**/*.yaml", "a/b/c.yaml", True),
        ("**/*.yaml", "a.yml", False),
        ("*.yaml", "a/b.yaml", False),
        ("flows/*.yaml", "flows/x.yaml", True),
        ("flows/*.yaml", "flows/sub/x.yaml", False),
        ("flows/**", "flows/sub/x.yaml", True),
        ("flows/**/*.yaml", "flows/x.yaml", True),
        ("wf?.yaml", "wf1.yaml", True),
        ("wf?.yaml", "wf12.yaml", False),
        ("wf[0-3].yaml", "wf2.yaml", True),
        ("wf[!0-3].yaml", "wf2.yaml", False),
        ("a+b.yaml", "a+b.yaml", True),
    ],
)
def test_glob_matching(pattern: str, path: str, matches: bool) -> None:
    assert (glob_regex(pattern).match(path) is not None) is matches


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("", "a glob cannot be empty"),
        ("/etc/*.yaml", "must be relative and stay inside the project directory"),
        ("../*.yaml", "must be relative and stay inside the project directory"),
        ("flows/*.yaml", None),
    ],
)
def test_glob_problem(pattern: str, problem: str | None) -> None:
    found = glob_problem(pattern)

    assert found == problem if problem is None else (found is not None and problem in found)


def test_a_bad_glob_in_herald_yaml_is_a_located_error(make_project: MakeProject) -> None:
    root = make_project({"herald.yaml": HERALD_YAML + 'workflows: ["*.yaml", "../x/*.yaml"]\n'})

    with pytest.raises(DefinitionError) as caught:
        load_project(root)

    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.path) == ("herald.yaml", 13, "workflows[1]")


def test_skipped_directories_are_not_walked(make_project: MakeProject) -> None:
    root = make_project({"wf.yaml": None})
    deep = root / "node_modules" / "pkg" / "x.yaml"
    deep.parent.mkdir(parents=True)
    deep.write_text("not: a workflow")

    assert discover(root) == []
    assert discover(root, ("**/*.yaml", "node_modules/**")) == []


def test_files_come_back_in_sorted_relative_path_order(tmp_path: Path) -> None:
    for rel in ("b.yaml", "a/z.yaml", "a.yaml", "A.yml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")

    assert [p.relative_to(tmp_path).as_posix() for p in discover(tmp_path)] == [
        "A.yml",
        "a.yaml",
        "a/z.yaml",
        "b.yaml",
    ]
