"""Line-tracking YAML: data as plain JSON values, and the line every path was written on."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflows.loading import yamlsource
from workflows.loading.yamlsource import format_path, parse_file

TEXT = """\
# a comment
id: wf
tasks:
  - id: a
    with:
      x: 1
  - id: b
    on_success:
      next: a
---
---
id: second
"""


def parse(tmp_path: Path, text: str) -> tuple[list, list]:  # type: ignore[type-arg]
    path = tmp_path / "f.yaml"
    path.write_text(text, encoding="utf-8")
    return parse_file(path, "f.yaml")


def test_every_document_and_the_line_of_every_path(tmp_path: Path) -> None:
    docs, problems = parse(tmp_path, TEXT)

    assert problems == []
    assert [d.index for d in docs] == [0, 2]  # the empty middle document is skipped
    first = docs[0]
    assert first.data == {
        "id": "wf",
        "tasks": [{"id": "a", "with": {"x": 1}}, {"id": "b", "on_success": {"next": "a"}}],
    }
    assert first.line_of(()) == 2
    assert first.line_of(("tasks",)) == 3
    assert first.line_of(("tasks", 1)) == 7
    assert first.line_of(("tasks", 0, "with")) == 5  # a mapping entry: the key's line
    assert first.line_of(("tasks", 1, "on_success", "next")) == 9
    assert docs[1].data == {"id": "second"} and docs[1].line_of(("id",)) == 12


def test_a_path_not_written_gets_the_line_of_its_nearest_ancestor(tmp_path: Path) -> None:
    docs, _ = parse(tmp_path, TEXT)

    assert docs[0].line_of(("tasks", 0, "with", "missing", 3)) == 5
    problem = docs[0].problem(("tasks", 0, "with", "missing"), "boom")
    assert str(problem) == "f.yaml:5: tasks[0].with.missing: boom"


def test_merge_keys_and_anchors_are_applied(tmp_path: Path) -> None:
    docs, problems = parse(tmp_path, "base: &b {retry: 3}\ntask:\n  <<: *b\n  id: a\n")

    assert problems == []
    assert docs[0].data["task"] == {"retry": 3, "id": "a"}


def test_scalars_keep_their_yaml_types(tmp_path: Path) -> None:
    docs, _ = parse(tmp_path, "a: 1\nb: 1.5\nc: true\nd: null\ne: '1'\n")

    assert docs[0].data == {"a": 1, "b": 1.5, "c": True, "d": None, "e": "1"}


def test_dates_stay_strings_as_in_json(tmp_path: Path) -> None:
    docs, problems = parse(tmp_path, "day: 2024-05-01\nat: 2024-05-01T10:00:00Z\n")

    assert problems == []
    assert docs[0].data == {"day": "2024-05-01", "at": "2024-05-01T10:00:00Z"}


def test_keys_are_the_strings_written(tmp_path: Path) -> None:
    docs, problems = parse(tmp_path, "on: 1\n2: two\nnull: x\n")

    assert problems == []
    assert docs[0].data == {"on": 1, "2": "two", "null": "x"}


@pytest.mark.parametrize(
    ("text", "line", "path", "message"),
    [
        ("id: a\nid: b\n", 2, "id", "duplicate key 'id' (first at line 1)"),
        (
            "a:\n  b: !!binary aGVsbG8=\n",
            2,
            "a.b",
            "tag:yaml.org,2002:binary values are not JSON; write a string, number, boolean or null",
        ),
        ("tasks:\n  - ? [a, b]\n    : x\n", 2, "tasks[0]", "a key must be a string"),
    ],
)
def test_key_problems_are_located(
    tmp_path: Path, text: str, line: int, path: str, message: str
) -> None:
    _, problems = parse(tmp_path, text)

    assert [(p.file, p.line, p.path, p.message) for p in problems] == [
        ("f.yaml", line, path, message)
    ]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("id: a\ntasks: [\n", 3, "node content"),
        ("id: a\n  bad: indent\n", 2, "mapping values are not allowed"),
        ("a: *nope\n", 1, "undefined alias"),
    ],
)
def test_a_syntax_error_is_one_located_problem_and_no_documents(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    docs, problems = parse(tmp_path, text)

    assert docs == []
    ((file, got_line, message),) = [(p.file, p.line, p.message) for p in problems]
    assert (file, got_line) == ("f.yaml", line)
    assert message.startswith("invalid YAML:") and fragment in message


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a: &x\n  - 1\n  - *x\n", 1, "an alias refers to a value that contains it"),
        ("a: " + "[" * 3000 + "]" * 3000 + "\n", 1, "invalid YAML:"),
    ],
)
def test_recursive_aliases_and_absurd_nesting_are_refused(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    docs, problems = parse(tmp_path, text)

    assert docs == []
    ((got_line, got_message),) = [(p.line, p.message) for p in problems]
    assert got_line == line and got_message.startswith(message)


def test_aliases_cannot_expand_without_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(yamlsource, "MAX_VALUES", 1000)
    laughs = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in "bcdef":
        previous = chr(ord(level) - 1)
        laughs.append(f"{level}: &{level} [{', '.join(['*' + previous] * 10)}]")

    docs, problems = parse(tmp_path, "\n".join(laughs) + "\n")

    assert docs == []
    assert [p.message for p in problems] == [
        "the document holds more than 1000 values once aliases are expanded"
    ]


def test_a_file_that_is_not_utf8_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"id: \xff\xfe\n")

    docs, (problem,) = parse_file(path, "bin.yaml")

    assert docs == [] and problem.message.startswith("cannot read the file:")


@pytest.mark.parametrize(
    ("path", "text"),
    [((), ""), (("id",), "id"), (("tasks", 2, "on_success", "next"), "tasks[2].on_success.next")],
)
def test_format_path(path: tuple[str | int, ...], text: str) -> None:
    assert format_path(path) == text
