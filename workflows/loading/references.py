"""References between definitions: ``$ref`` and the target of ``$use``.

Three forms exist:

- ``#/triggers/0/schema``: a JSON pointer into the same YAML document;
- ``global::models.#(id=="gpt-4o")``: a dotted path into ``herald.yaml``;
- ``local::agents.#(id=="x")``: a dotted path into the workflow's own document,
  falling back to ``herald.yaml``'s shared ``tools``/``agents``/``models``.

A dotted path is made of keys and ``#(key=="value")`` selectors (the first list
item whose ``key`` equals ``value``); nothing else is accepted, so a mistake is
reported rather than guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from workflows.errors import HeraldError
from workflows.jsonpointer import unescape
from workflows.loading.yamlsource import JsonPath

SCOPES = ("local", "global")
_SCOPE = re.compile(r"^(?P<scope>[A-Za-z_][A-Za-z0-9_]*)::(?P<path>.*)$", re.DOTALL)
_SELECTOR = re.compile(r'#\((?P<key>[A-Za-z_][A-Za-z0-9_-]*)=="(?P<value>[^"]*)"\)')
_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")
_USE = re.compile(r"^(?P<kind>[a-z]+)\((?P<ref>.*)\)$", re.DOTALL)
#: where a JSON Schema starts: below these, ``$ref`` belongs to JSON Schema, not herald
_SCHEMA_ROOTS = (
    ("triggers", int, "schema"),
    ("config", "input"),
    ("agents", int, "actions", int, "input"),
    ("agents", int, "actions", int, "output"),
    ("tools", int, "input"),
    ("tools", int, "output"),
)


class UnresolvedReference(HeraldError):
    """A ``$ref`` or ``$use`` is malformed or points at nothing."""

    def __init__(self, message: str, depth: int = 0) -> None:
        super().__init__(message)
        #: how many path segments matched before it failed (the deeper failure is reported)
        self.depth = depth


@dataclass(frozen=True)
class Selector:
    """``#(key=="value")``: the first list item whose ``key`` equals ``value``."""

    key: str
    value: str

    def __str__(self) -> str:
        return f'#({self.key}=="{self.value}")'


@dataclass(frozen=True)
class Reference:
    """A parsed ``scope::path`` reference."""

    text: str
    scope: str
    segments: tuple[str | Selector, ...]


def parse_reference(text: str) -> Reference:
    """Parse ``local::a.#(k=="v")`` / ``global::...``; raise UnresolvedReference if malformed."""
    match = _SCOPE.match(text.strip())
    if match is None:
        raise UnresolvedReference(
            f"reference {text!r} is not of the form local::path or global::path"
        )
    scope, path = match["scope"], match["path"]
    if scope not in SCOPES:
        raise UnresolvedReference(
            f"reference {text!r} has unknown scope {scope!r}; use local:: or global::"
        )
    segments: list[str | Selector] = []
    pos = 0
    while True:
        selector = _SELECTOR.match(path, pos)
        key = _KEY.match(path, pos)
        if selector is not None:
            segments.append(Selector(selector["key"], selector["value"]))
            pos = selector.end()
        elif key is not None:
            segments.append(key.group())
            pos = key.end()
        else:
            bad = path[pos:].split(".", 1)[0] or "<empty>"
            hint = ' (select list items with #(id=="..."))' if bad.isdigit() else ""
            raise UnresolvedReference(
                f"reference {text!r}: unsupported path segment {bad!r}{hint}; "
                'a path is made of keys and #(key=="value") selectors'
            )
        if pos == len(path):
            return Reference(text, scope, tuple(segments))
        if path[pos] != ".":
            raise UnresolvedReference(f"reference {text!r}: expected '.' at {path[pos:]!r}")
        pos += 1


def parse_use(text: str) -> tuple[str, Reference]:
    """``agent(local::agents.#(id=="x"))`` -> ``("agent", reference)``."""
    match = _USE.match(text.strip())
    if match is None or match["kind"] not in ("agent", "tool"):
        raise UnresolvedReference(
            f"$use {text!r} must be agent(<reference>) or tool(<reference>), "
            f'e.g. tool(local::tools.#(id=="x"))'
        )
    return match["kind"], parse_reference(match["ref"])


def walk(data: Any, ref: Reference) -> tuple[JsonPath, Any]:
    """Follow a reference's segments through ``data``; raise UnresolvedReference if it fails."""
    path: list[str | int] = []
    value = data
    for segment in ref.segments:
        if isinstance(segment, Selector):
            if not isinstance(value, list):
                raise UnresolvedReference(
                    f"reference {ref.text!r}: {segment} needs a list", len(path)
                )
            for index, item in enumerate(value):
                if isinstance(item, dict) and str(item.get(segment.key)) == segment.value:
                    path.append(index)
                    value = item
                    break
            else:
                raise UnresolvedReference(
                    f"reference {ref.text!r}: {segment} matches nothing", len(path)
                )
        else:
            if not isinstance(value, dict) or segment not in value:
                raise UnresolvedReference(f"reference {ref.text!r}: no key {segment!r}", len(path))
            path.append(segment)
            value = value[segment]
    return tuple(path), value


def locate(ref: Reference, local: Any, shared: Any | None) -> tuple[str, JsonPath, Any]:
    """Where a reference points: ``("local" | "global", path, value)``.

    ``local::`` looks in the workflow's document first, then in ``herald.yaml``.
    """
    if ref.scope == "local":
        try:
            return ("local", *walk(local, ref))
        except UnresolvedReference as exc:
            if shared is None:
                raise UnresolvedReference(f"{exc.message} (there is no herald.yaml)") from None
            try:
                return ("global", *walk(shared, ref))
            except UnresolvedReference as shared_exc:
                deeper = shared_exc if shared_exc.depth > exc.depth else exc
                raise UnresolvedReference(
                    f"{deeper.message} in this document or in herald.yaml"
                ) from None
    if shared is None:
        raise UnresolvedReference(f"reference {ref.text!r} needs a herald.yaml, and there is none")
    try:
        return ("global", *walk(shared, ref))
    except UnresolvedReference as exc:
        raise UnresolvedReference(f"{exc.message} in herald.yaml") from None


def pointer(data: Any, text: str) -> tuple[JsonPath, Any]:
    """Follow a ``#/a/0/b`` JSON pointer through ``data``."""
    if text == "#":
        return (), data
    if not text.startswith("#/"):
        raise UnresolvedReference(f"$ref {text!r}: a JSON pointer starts with '#/'")
    path: list[str | int] = []
    value = data
    for raw in text[2:].split("/"):
        part = unescape(raw)
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            path.append(int(part))
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            path.append(part)
            value = value[part]
        else:
            where = "/".join(str(p) for p in path) or "the document root"
            raise UnresolvedReference(f"$ref {text!r}: nothing at {part!r} under {where}")
    return tuple(path), value


def _schema_position(path: JsonPath) -> int:
    """Where ``path`` stands to JSON Schema positions: 0 outside, 1 at a root, 2 inside."""
    for root in _SCHEMA_ROOTS:
        if len(path) >= len(root) and all(
            (r is int and isinstance(p, int)) or r == p for r, p in zip(root, path, strict=False)
        ):
            return 1 if len(path) == len(root) else 2
    return 0


def in_schema_body(path: JsonPath) -> bool:
    """True strictly inside a JSON Schema position, where ``$ref`` is JSON Schema's own."""
    return _schema_position(path) == 2


def is_herald_ref(path: JsonPath, ref: str) -> bool:
    """Whether herald resolves the ``$ref`` of the mapping at ``path``.

    Everywhere outside JSON Schemas. At a schema's root, only ``#/...`` pointers
    into the document and ``local::``/``global::`` references; any other ``$ref``
    there, and every ``$ref`` inside a schema, is left to JSON Schema.
    """
    position = _schema_position(path)
    if position == 0:
        return True
    return position == 1 and (ref.startswith("#") or _SCOPE.match(ref) is not None)


class Resolver:
    """Replaces every herald ``$ref`` of a document; collects what cannot be resolved.

    ``shared`` is ``herald.yaml``'s data, already resolved (``None`` when there is
    no herald.yaml); for herald.yaml itself, ``local`` and ``shared`` are the same.
    """

    def __init__(self, local: Any, shared: Any | None) -> None:
        self.local = local
        self.shared = shared
        #: (path of the ``$ref`` key, message) for each reference that failed
        self.problems: list[tuple[JsonPath, str]] = []
        self._active: list[JsonPath] = []

    def resolve(self) -> Any:
        """The document's data with references replaced."""
        return self._walk(self.local, ())

    def _walk(self, value: Any, path: JsonPath) -> Any:
        if isinstance(value, dict):
            ref = value.get("$ref")
            if isinstance(ref, str) and is_herald_ref(path, ref):
                return self._replace(value, ref, path)
            return {k: self._walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._walk(v, (*path, i)) for i, v in enumerate(value)]
        return value

    def _replace(self, mapping: dict[str, Any], ref: str, path: JsonPath) -> Any:
        try:
            target = self._target(ref)
        except UnresolvedReference as exc:
            self.problems.append(((*path, "$ref"), exc.message))
            return {k: v for k, v in mapping.items() if k != "$ref"}
        siblings = {k: self._walk(v, (*path, k)) for k, v in mapping.items() if k != "$ref"}
        if not siblings:
            return target
        if not isinstance(target, dict):
            self.problems.append(
                ((*path, "$ref"), f"$ref {ref!r}: keys beside $ref need a mapping to merge into")
            )
            return siblings
        return {**target, **siblings}

    def _target(self, ref: str) -> Any:
        if ref.startswith("#"):
            target_path, value = pointer(self.local, ref)
            return self._follow(ref, target_path, value)
        source, target_path, value = locate(parse_reference(ref), self.local, self.shared)
        if source == "global" and self.shared is not self.local:
            return value  # herald.yaml was resolved before any workflow
        return self._follow(ref, target_path, value)

    def _follow(self, ref: str, target_path: JsonPath, value: Any) -> Any:
        if any(target_path[: len(active)] == active for active in self._active):
            raise UnresolvedReference(f"$ref {ref!r} refers to itself (a cycle)")
        self._active.append(target_path)
        try:
            return self._walk(value, target_path)
        finally:
            self._active.pop()
