"""YAML documents that remember where each value was written.

PyYAML's ``compose`` gives every node a start mark; this module turns the node
tree into plain JSON-like data and keeps, for every path into that data, the
1-based line it came from. A path is a tuple of mapping keys and list indexes,
``("tasks", 2, "on_success", "next")``, printed as ``tasks[2].on_success.next``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workflows.errors import HeraldError, Problem

JsonPath = tuple[str | int, ...]
"""A path into a document's data: mapping keys and list indexes."""

#: values one document may hold once its aliases are expanded (a "billion laughs" stops here)
MAX_VALUES = 250_000
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_JSON_SCALARS = (str, int, float, bool, type(None))

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def format_path(path: Iterable[str | int]) -> str:
    """``("tasks", 2, "with")`` -> ``tasks[2].with``; the empty path is ``""``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass
class Document:
    """One YAML document of a file: its data and the line of every value in it."""

    #: the file, relative to the project root, as shown in messages
    file: str
    #: absolute path of the file (tool paths resolve against its directory)
    path: Path
    #: position of the document in its file (0 for the first)
    index: int
    data: Any
    #: the 1-based line where each path was written (the key's line for mapping entries)
    lines: dict[JsonPath, int] = field(default_factory=dict)

    def line_of(self, path: Iterable[str | int]) -> int:
        """The line of ``path``, or of its nearest ancestor that has one."""
        parts = tuple(path)
        while parts:
            line = self.lines.get(parts)
            if line is not None:
                return line
            parts = parts[:-1]
        return self.lines.get((), 1)

    def problem(self, path: Iterable[str | int], message: str, *, warning: bool = False) -> Problem:
        """A problem located at ``path`` in this document."""
        parts = tuple(path)
        return Problem(self.file, self.line_of(parts), format_path(parts), message, warning)


class UnloadableYaml(HeraldError):
    """A YAML document cannot become JSON data: a recursive alias, or too large once expanded."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class _Builder:
    """Turns a composed node tree into data, recording lines; collects problems."""

    def __init__(self, loader: yaml.SafeLoader, doc: Document, problems: list[Problem]) -> None:
        self.loader = loader
        self.doc = doc
        self.problems = problems
        self.count = 0
        self.stack: set[int] = set()  # ids of the collection nodes being built

    def build(self, node: yaml.Node, path: JsonPath) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise UnloadableYaml(
                f"the document holds more than {MAX_VALUES} values once aliases are expanded",
                node.start_mark.line + 1,
            )
        if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            return self._scalar(node, path)
        if id(node) in self.stack:
            raise UnloadableYaml(
                "an alias refers to a value that contains it", node.start_mark.line + 1
            )
        self.stack.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            items = []
            for index, item in enumerate(node.value):
                self.doc.lines[(*path, index)] = item.start_mark.line + 1
                items.append(self.build(item, (*path, index)))
            return items
        finally:
            self.stack.discard(id(node))

    def _scalar(self, node: yaml.Node, path: JsonPath) -> Any:
        if node.tag == _TIMESTAMP:
            return node.value  # JSON has no dates: 2024-05-01 stays the string it was written as
        value = self.loader.construct_object(node, deep=True)
        if not isinstance(value, _JSON_SCALARS):
            self.problems.append(
                Problem(
                    self.doc.file,
                    node.start_mark.line + 1,
                    format_path(path),
                    f"{node.tag} values are not JSON; write a string, number, boolean or null",
                )
            )
            return None
        return value

    def _mapping(self, node: yaml.MappingNode, path: JsonPath) -> dict[str, Any]:
        self.loader.flatten_mapping(node)  # applies YAML merge keys (<<)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                where = format_path(path)
                self.problems.append(Problem(self.doc.file, line, where, "a key must be a string"))
                continue
            # keys are strings as in JSON: `on:` is "on" and `1:` is "1", never true or 1
            key = key_node.value
            if key in out:
                self.problems.append(
                    Problem(
                        self.doc.file,
                        line,
                        format_path((*path, key)),
                        f"duplicate key {key!r} (first at line {self.doc.lines[(*path, key)]})",
                    )
                )
                continue
            self.doc.lines[(*path, key)] = line
            out[key] = self.build(value_node, (*path, key))
        return out


def parse_file(path: Path, file: str) -> tuple[list[Document], list[Problem]]:
    """Every non-empty document of a YAML file, and the problems met reading it.

    A syntax error stops the file: its documents are not returned and the error
    is reported with its line.
    """
    problems: list[Problem] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Problem(file, 1, "", f"cannot read the file: {exc}")]
    loader = _Loader(text)
    docs: list[Document] = []
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None or _is_empty(node):
                index += 1
                continue
            doc = Document(file, path, index, None, {(): node.start_mark.line + 1})
            doc.data = _Builder(loader, doc, problems).build(node, ())
            docs.append(doc)
            index += 1
    except UnloadableYaml as exc:
        return [], [Problem(file, exc.line, "", exc.message)]
    except RecursionError:  # a self-merging alias (<<: *a inside &a), or absurd nesting
        return [], [Problem(file, 1, "", "invalid YAML: nested too deeply, or a recursive alias")]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        return [], [Problem(file, line, "", f"invalid YAML: {exc.problem or exc.context}")]
    except yaml.YAMLError as exc:
        return [], [Problem(file, 1, "", f"invalid YAML: {exc}")]
    finally:
        loader.dispose()
    return docs, problems


def _is_empty(node: yaml.Node) -> bool:
    """A document with nothing in it (a trailing ``---``, only comments)."""
    return isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null") and not node.value
