"""The shipped JSON Schema files: valid Draft 2020-12, and what editors see in the seed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from workflows.loading import validation
from workflows.loading.validation import PROJECT_SCHEMA, SCHEMA_DIR, WORKFLOW_SCHEMA


def editor_validator(name: str) -> Draft202012Validator:
    """A validator set up as an editor would: the files as written, side by side."""
    schemas = {
        n: json.loads((SCHEMA_DIR / n).read_text()) for n in (WORKFLOW_SCHEMA, PROJECT_SCHEMA)
    }
    registry: Registry[object] = Registry().with_resources(
        (n, Resource.from_contents(s)) for n, s in schemas.items()
    )
    return Draft202012Validator(schemas[name], registry=registry)


@pytest.mark.parametrize("name", [WORKFLOW_SCHEMA, PROJECT_SCHEMA])
def test_schema_files_are_valid_draft_2020_12(name: str) -> None:
    schema = json.loads((SCHEMA_DIR / name).read_text())

    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_seed_workflows_as_written_satisfy_the_editor_schema(seed_dir: Path) -> None:
    validator = editor_validator(WORKFLOW_SCHEMA)
    documents = [
        doc
        for path in sorted(seed_dir.glob("*.yaml"))
        if path.name != "herald.yaml"
        for doc in yaml.safe_load_all(path.read_text())
        if doc is not None
    ]

    assert len(documents) == 6
    for doc in documents:
        assert [e.message for e in validator.iter_errors(doc)] == [], doc["id"]


def test_seed_project_file_as_written_satisfies_the_editor_schema(seed_dir: Path) -> None:
    doc = yaml.safe_load((seed_dir / "herald.yaml").read_text())

    assert [e.message for e in editor_validator(PROJECT_SCHEMA).iter_errors(doc)] == []


def test_seed_project_file_points_editors_at_the_schema(seed_dir: Path) -> None:
    first = (seed_dir / "herald.yaml").read_text().splitlines()[0]
    target = first.removeprefix("# yaml-language-server: $schema=")

    assert (seed_dir / target).resolve() == (SCHEMA_DIR / PROJECT_SCHEMA).resolve()


def test_editor_schema_flags_an_unknown_key() -> None:
    doc = {"id": "wf", "tasks": [{"id": "a", "$use": "tool(x)", "nxt": "b"}]}

    errors = list(editor_validator(WORKFLOW_SCHEMA).iter_errors(doc))

    assert [list(e.absolute_path) for e in errors] == [["tasks", 0]]
    assert "'nxt' was unexpected" in errors[0].message


SCHEMAS = [
    {"type": "object", "properties": {"id": {"type": "string", "pattern": "^[a-z]+$"}}},
    {"type": "strin"},
    {"type": ["string", "strin"]},
    {"pattern": "["},
    {"pattern": "(?<name>a)"},  # an ECMA-262 group Python's re refuses: refused as before
    {"patternProperties": {"[": {}}},
    {"properties": {"pattern": {"type": "string"}}},  # a property named "pattern"
    {"enum": [{"pattern": "["}]},  # not a schema: valid
    {"minLength": -1},
    {"required": "a"},
    {"format": 5},
    {"items": {"pattern": "a{"}},
    {"$ref": "#/$defs/missing"},
    {"$defs": {"x": {"type": "integer"}}, "$ref": "#/$defs/x"},
    {"$id": "not a uri"},
    {"additionalProperties": {"type": "number", "minimum": "0"}},
    {"oneOf": [{"type": "string"}, {"type": "nope"}]},
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=[json.dumps(s)[:40] for s in SCHEMAS])
def test_the_quick_schema_check_never_passes_what_the_full_check_refuses(
    schema: dict[str, Any],
) -> None:
    full = [error.message for error in validation._meta_validator().iter_errors(schema)]
    if validation._plainly_valid(schema):
        assert full == [], f"the quick check passed what the full one refuses: {full}"
    if "$ref" not in schema:  # a $ref is also checked for resolving
        assert bool(validation._schema_problems(schema)) == bool(full)


def _documents() -> list[Path]:
    root = Path(__file__).resolve().parents[3]
    found = [*root.glob("examples/**/*.yaml"), *root.glob("tests/fixtures/**/*.yaml")]
    return sorted(p for p in found if p.name != "project.yaml")


@pytest.mark.parametrize("path", _documents(), ids=lambda p: p.name)
def test_the_quick_file_format_check_agrees_with_the_full_one(path: Path) -> None:
    for data in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        quick = validation._quick_validator(WORKFLOW_SCHEMA).is_valid(data)
        full = not list(validation._validator(WORKFLOW_SCHEMA).iter_errors(data))
        assert quick == full, path
