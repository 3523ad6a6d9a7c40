"""The shipped JSON Schema files: valid Draft 2020-12, and what editors see in the seed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

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
