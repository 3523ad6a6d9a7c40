"""Fixtures for the workflow-definition tests: small projects written into a temp directory."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

HERALD_YAML = """\
models:
  - id: gpt-4o
    provider: mock
    model: gpt-4o
tools:
  - id: notify
    execute: ./tools/notify.sh
agents:
  - id: helper
    config: {$ref: global::models.#(id=="gpt-4o")}
    actions:
      - id: summarize
"""

MakeProject = Callable[..., Path]


@pytest.fixture
def make_project(tmp_path: Path) -> MakeProject:
    """Write ``{relative path: YAML text}`` (dedented) as a project; returns its root.

    A ``herald.yaml`` with a mock ``gpt-4o`` model, a shared ``notify`` tool and a
    shared ``helper`` agent is written unless the files give their own (or ``None``).
    Every ``execute`` target the shared pieces need exists (``tools/notify.sh``, ``run.sh``).
    """

    def make(files: dict[str, str | None], root: Path = tmp_path / "project") -> Path:
        root.mkdir(parents=True, exist_ok=True)
        all_files: dict[str, str | None] = {"herald.yaml": HERALD_YAML, **files}
        for rel, text in all_files.items():
            if text is None:
                continue
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text), encoding="utf-8")
        for script in ("tools/notify.sh", "run.sh"):
            path = root / script
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("#!/bin/sh\necho '{}'\n", encoding="utf-8")
            path.chmod(0o755)
        return root

    return make
