"""Structural checks of workflow and project documents against the shipped JSON Schemas.

``workflows/schema/workflow.schema.json`` and ``project.schema.json`` describe the
file formats; editors use them through ``# yaml-language-server: $schema=...``
and the loader uses them here. Each jsonschema error becomes a
:class:`~workflows.errors.Problem` with the line of the offending YAML node and a
message a user can act on (unknown keys are named, enums list what is supported).

A document is first checked with ``jsonschema_rs``, and Python's jsonschema (the
messages above) is imported and run only when that finds something: a process
loading valid definitions never imports it, which keeps ~6 MB out of every API
and worker process. The quick check must never pass what the full one refuses;
tests/workflows/loading/test_validation.py holds the two to the same verdicts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema_rs

from workflows.errors import Problem
from workflows.loading.yamlsource import Document, JsonPath
from workflows.payload_schema import UncompilableSchema, compile_payload_schema

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

SCHEMA_DIR = Path(__file__).parent.parent / "schema"
WORKFLOW_SCHEMA = "workflow.schema.json"
PROJECT_SCHEMA = "project.schema.json"

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


@cache
def _schema_file(name: str) -> dict[str, Any]:
    contents: dict[str, Any] = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    return contents


@cache
def _inlined(name: str) -> dict[str, Any]:
    """The file format with its own ``$ref``s inlined, once.

    The formats are not recursive, so inlining ends; it spares the validators a
    reference lookup for every task of every workflow.
    """
    inlined: dict[str, Any] = _inline(_schema_file(name), name)
    return inlined


@cache
def _quick_validator(name: str) -> jsonschema_rs.Validator:
    """``jsonschema_rs`` on the file format: formats not asserted, as by the full check."""
    return jsonschema_rs.Draft202012Validator(_inlined(name), validate_formats=False)


@cache
def _validator(name: str) -> Draft202012Validator:
    """Python's jsonschema on the file format, for the messages of a document that fails."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(_inlined(name))


def _inline(value: Any, file: str) -> Any:
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and "#/" in ref:
            target_file, pointer = ref.split("#", 1)
            target_file = target_file or file
            target: Any = _schema_file(target_file)
            for part in pointer.strip("/").split("/"):
                target = target[part]
            siblings = {k: _inline(v, file) for k, v in value.items() if k != "$ref"}
            return {**_inline(target, target_file), **siblings}
        return {k: _inline(v, file) for k, v in value.items()}
    if isinstance(value, list):
        return [_inline(v, file) for v in value]
    return value


@cache
def _meta_validator() -> Draft202012Validator:
    # with format asserted, as jsonschema's own check_schema does: a bad `pattern` is caught
    from jsonschema import Draft202012Validator

    return Draft202012Validator(
        Draft202012Validator.META_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def check_structure(doc: Document, data: Any, schema: str) -> list[Problem]:
    """Every structural problem of ``data`` (the document's resolved data) against ``schema``."""
    if _quick_validator(schema).is_valid(data):
        return []
    problems: list[Problem] = []
    for error in _validator(schema).iter_errors(data):
        problems.extend(_explain(doc, error))
    return sorted(problems, key=lambda p: (p.line, p.path))


def check_schema(doc: Document, path: JsonPath, schema: Any) -> list[Problem]:
    """Problems with a JSON Schema embedded in a definition (Draft 2020-12 meta-schema)."""
    try:
        key = json.dumps(schema, sort_keys=True)
    except (TypeError, ValueError):  # not JSON at all: the meta-schema check says why
        found = _schema_problems(schema)
    else:
        found = _cached_schema_problems(key)  # projects repeat schemas; checking one costs ~1 ms
    return [doc.problem((*path, *where), message) for where, message in found]


def check_payload_schema(doc: Document, path: JsonPath, schema: Any) -> list[Problem]:
    """Problems compiling a trigger's payload schema the way the registry will (jsonschema_rs).

    Checked once the meta-schema has nothing to say (:func:`check_schema` reports that):
    Python's jsonschema and jsonschema_rs differ on a few things, a ``pattern``'s regex
    dialect first, and the registry must not meet a schema it cannot compile.
    """
    if not isinstance(schema, dict) or check_schema(doc, path, schema):
        return []
    try:
        compile_payload_schema(schema)
    except UncompilableSchema as exc:
        hint = " (patterns are ECMA-262 regular expressions)" if "regex" in exc.message else ""
        message = f"invalid JSON Schema for payloads: {exc.message}{hint}"
        return [doc.problem((*path, *exc.path), message)]
    return []


@lru_cache(maxsize=1024)
def _cached_schema_problems(key: str) -> tuple[tuple[JsonPath, str], ...]:
    return _schema_problems(json.loads(key))


def _schema_problems(schema: Any) -> tuple[tuple[JsonPath, str], ...]:
    """(path inside the schema, message) for each problem of ``schema``."""
    if _plainly_valid(schema):
        return ()
    from jsonschema.exceptions import best_match

    problems: list[tuple[JsonPath, str]] = []
    for error in _meta_validator().iter_errors(schema):
        # an anyOf/oneOf failure says "not valid under any of the given schemas": say why
        reason = best_match(error.context).message if error.context else error.message
        problems.append((tuple(error.absolute_path), f"invalid JSON Schema: {reason}"))
    if not problems and isinstance(schema, dict) and not _has_nested_id(schema):
        problems.extend(
            (where, f"invalid JSON Schema: $ref {ref!r} resolves to nothing")
            for where, ref in _refs(schema, ())
            if not _resolvable(schema, ref)
        )
    return tuple(problems)


#: keywords whose values the full check asserts as URIs, or that move references around:
#: a schema holding one always takes the full check
_URI_KEYWORDS = frozenset({"$schema", "$id", "$ref", "$dynamicRef", "$anchor", "$dynamicAnchor"})


def _plainly_valid(schema: Any) -> bool:
    """Whether the full check would find nothing, known without Python's jsonschema.

    ``jsonschema_rs`` checks the meta-schema; what the full check adds, the
    ``regex`` format, is Python's ``re`` compiling every ``pattern`` and
    ``patternProperties`` key. A schema with a URI keyword is not decided here.
    """
    if not isinstance(schema, dict) or not jsonschema_rs.meta.is_valid(schema):
        return False
    patterns: list[str] = []
    if not _collect_patterns(schema, patterns):
        return False
    try:
        for pattern in patterns:
            re.compile(pattern)
    except (re.error, RecursionError):
        return False
    return True


def _collect_patterns(value: Any, patterns: list[str]) -> bool:
    """Gather the regexes of a schema; ``False`` when it holds a URI keyword."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _URI_KEYWORDS:
                return False
            if key == "pattern" and isinstance(item, str):
                patterns.append(item)
            elif key == "patternProperties" and isinstance(item, dict):
                patterns.extend(str(k) for k in item)
            if not _collect_patterns(item, patterns):
                return False
    elif isinstance(value, list):
        return all(_collect_patterns(item, patterns) for item in value)
    return True


def _refs(value: Any, path: JsonPath) -> Iterator[tuple[JsonPath, str]]:
    """Every ``$ref`` of a schema, with its path."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str):
                yield (*path, key), item
            else:
                yield from _refs(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _refs(item, (*path, index))


def _has_nested_id(schema: dict[str, Any]) -> bool:
    """A nested ``$id`` changes the base of the refs below it: those are not checked here."""
    return any(path[-1] == "$id" and len(path) > 1 for path, _ in _ids(schema, ()))


def _ids(value: Any, path: JsonPath) -> Iterator[tuple[JsonPath, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$id":
                yield (*path, key), item
            yield from _ids(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _ids(item, (*path, index))


def _resolvable(schema: dict[str, Any], ref: str) -> bool:
    """Whether jsonschema will find ``ref`` from the schema's root (herald fetches nothing)."""
    from referencing import Registry
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import DRAFT202012

    resolver = Registry().resolver_with_root(DRAFT202012.create_resource(schema))
    try:
        resolver.lookup(ref)
    except Unresolvable:
        return False
    return True


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    """``allOf`` wrappers report their sub-errors; everything else reports itself."""
    if error.validator == "allOf" and error.context:
        for sub in error.context:
            yield from _leaves(sub)
    else:
        yield error


def _explain(doc: Document, error: ValidationError) -> Iterator[Problem]:
    for leaf in _leaves(error):
        path: JsonPath = tuple(leaf.absolute_path)
        explain = _EXPLAINERS.get(str(leaf.validator))
        if explain is None:
            yield doc.problem(path, leaf.message)
        else:
            for where, message in explain(leaf, path):
                yield doc.problem(where, message)


Explained = Iterator[tuple[JsonPath, str]]


def _unknown_keys(error: ValidationError, path: JsonPath) -> Explained:
    schema = error.schema if isinstance(error.schema, dict) else {}
    allowed = sorted(schema.get("properties", {}))
    for key in error.instance:
        if key not in allowed:
            yield (*path, key), f"unknown key {key!r}; expected one of: {', '.join(allowed)}"


def _missing_key(error: ValidationError, path: JsonPath) -> Explained:
    # jsonschema reports each missing key in its own error, starting with the key's repr
    for key in error.validator_value:
        if key not in error.instance and error.message.startswith(repr(key)):
            yield path, f"missing required key {key!r}"


def _wrong_type(error: ValidationError, path: JsonPath) -> Explained:
    expected = error.validator_value
    names = [expected] if isinstance(expected, str) else list(expected)
    wanted = " or ".join(_TYPE_NAMES.get(n, n) for n in names)
    yield path, f"must be {wanted}, not {_describe(error.instance)}"


def _unsupported(error: ValidationError, path: JsonPath) -> Explained:
    options = error.validator_value if error.validator == "enum" else [error.validator_value]
    what = path[-1] if path and isinstance(path[-1], str) else "value"
    owner = _owner(path)
    label = f"{owner} {what}" if owner else str(what)
    supported = ", ".join(str(o) for o in options)
    yield path, f"unsupported {label} {error.instance!r} (supported: {supported})"


def _custom(error: ValidationError, path: JsonPath) -> Explained:
    """The schema's own ``errorMessage`` (also shown by editors), when it has one."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    custom = schema.get("errorMessage")
    if custom is None:
        yield path, error.message
    elif error.validator == "minItems":
        yield path, str(custom)
    else:
        yield path, f"{error.instance!r} {custom}"


_EXPLAINERS: dict[str, Callable[[ValidationError, JsonPath], Explained]] = {
    "additionalProperties": _unknown_keys,
    "required": _missing_key,
    "type": _wrong_type,
    "enum": _unsupported,
    "const": _unsupported,
    "pattern": _custom,
    "maxLength": _custom,
    "minItems": _custom,
}


def _owner(path: JsonPath) -> str:
    """``("tasks", 2, "type")`` -> ``"task"``: the singular of the list holding the value."""
    for part in reversed(path[:-1]):
        if isinstance(part, str):
            return {
                "tasks": "task",
                "triggers": "trigger",
                "agents": "agent",
                "tools": "tool",
                "models": "model",
                "config": "model",
            }.get(part, part)
    return ""


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return f"a number ({value})"
    return f"a string ({value!r})"
