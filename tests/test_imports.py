"""Imports point one way (DESIGN.md): ``herald -> app -> workflows <- workers <- herald``.

Every module of the four packages is parsed (not imported) and each ``import``
statement checked, those inside functions and ``TYPE_CHECKING`` blocks included:

- ``workflows`` (the engine core) imports none of app, workers, herald, Flask, Celery, kombu;
- ``workers`` (the Celery side) imports neither app, herald nor Flask;
- ``app`` (the HTTP side) imports nothing of herald, and of workers only
  ``workers.celery_app``, the Celery app object it publishes with;
- only ``herald``, the composition root, imports ``herald``.

An offence is reported as ``file:line: imports NAME (why)``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Rule:
    """What one package may not import: ``forbidden`` names, except under ``allowed`` ones."""

    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()
    why: str = ""


RULES = {
    "workflows": Rule(
        ("app", "workers", "herald", "flask", "celery", "kombu"),
        why="the engine core knows no Flask, no Celery, no caller",
    ),
    "workers": Rule(("app", "herald", "flask"), why="the Celery side knows no HTTP side"),
    "app": Rule(
        ("herald", "workers"),
        allowed=("workers.celery_app",),
        why="the HTTP side imports only the Celery app object of workers, to publish",
    ),
    "herald": Rule((), why="the composition root may import everything"),
}


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def module_name(path: str) -> str:
    """``app/api/events.py`` -> ``app.api.events``; ``app/api/__init__.py`` -> ``app.api``."""
    parts = path.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, path: str) -> Iterator[tuple[int, str]]:
    """``(line, name)`` for every name an import statement brings in, relative ones resolved.

    ``from m import x`` yields ``m.x`` (a submodule or an attribute of ``m``, both
    are "from ``m``").
    """
    package = module_name(path).split(".")
    if not path.endswith("__init__.py"):
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = [*package[: len(package) - node.level + 1]] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def offences(source: str, path: str) -> list[str]:
    """Every import in ``source`` (the module at ``path``) that its package may not make."""
    rule = RULES[path.split("/")[0]]
    found = []
    for line, name in imported(ast.parse(source, filename=path), path):
        if _under(name, rule.forbidden) and not _under(name, rule.allowed):
            found.append(f"{path}:{line}: imports {name} ({rule.why})")
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(RULES))
def test_each_package_imports_only_what_the_layout_allows(package: str) -> None:
    files = modules(package)
    assert files, f"no module found under {package}/"
    found = [
        offence
        for file in files
        for offence in offences(file.read_text(encoding="utf-8"), file.relative_to(ROOT).as_posix())
    ]
    assert not found, "imports against the layout of DESIGN.md:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("path", "source", "reported"),
    [
        ("workflows/engine.py", "import flask\n", "workflows/engine.py:1: imports flask"),
        (
            "workflows/x.py",
            "x = 1\nfrom celery import Celery\n",
            "workflows/x.py:2: imports celery",
        ),
        ("workflows/x.py", "from kombu.exceptions import KombuError\n", ":1: imports kombu"),
        ("workflows/x.py", "def f():\n    from app import create_app\n", ":2: imports app"),
        ("workflows/store/x.py", "import workers.runtime\n", ":1: imports workers.runtime"),
        ("workflows/x.py", "from herald.preflight import preflight\n", ":1: imports herald"),
        ("workers/x.py", "from flask import Flask\n", "workers/x.py:1: imports flask.Flask"),
        ("workers/x.py", "from app.state import state\n", ":1: imports app.state"),
        ("workers/x.py", "import herald.cli\n", ":1: imports herald.cli"),
        (
            "app/x.py",
            "from workers.runtime import Runtime\n",
            "app/x.py:1: imports workers.runtime",
        ),
        ("app/x.py", "import workers\n", ":1: imports workers "),
        ("app/x.py", "from workers import sweep\n", ":1: imports workers.sweep"),
        ("app/x.py", "from workers.celery_apps import x\n", ":1: imports workers.celery_apps"),
        ("app/api/x.py", "if TYPE_CHECKING:\n    from workers.steps import s\n", ":2: imports"),
        ("app/x.py", "from herald import cli\n", "app/x.py:1: imports herald.cli"),
    ],
)
def test_a_forbidden_import_is_reported_with_its_file_and_line(
    path: str, source: str, reported: str
) -> None:
    found = offences(source, path)
    assert len(found) == 1 and reported in found[0], found


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("app/api/executions.py", "from workers.celery_app import publish_step\n"),
        ("app/publish.py", "from workers.celery_app import DISPATCH_TASK, make_celery\n"),
        ("app/x.py", "from workers import celery_app\nimport workers.celery_app\n"),
        ("app/x.py", "from flask import Flask\nfrom workflows.store import db\n"),
        ("app/api/x.py", "from . import common\nfrom ..state import state\n"),
        ("workers/x.py", "from celery import Celery\nfrom kombu import Queue\n"),
        ("workflows/x.py", "import sqlalchemy\nfrom .store import db\nimport flasky\n"),
        ("herald/x.py", "from app import create_app\nfrom workers.sweep import Sweeper\n"),
    ],
)
def test_an_allowed_import_is_not_reported(path: str, source: str) -> None:
    assert offences(source, path) == []


@pytest.mark.parametrize(
    ("path", "source", "name"),
    [
        ("app/api/events.py", "from . import common\n", "app.api.common"),
        ("app/api/__init__.py", "from .events import bp\n", "app.api.events.bp"),
        ("app/api/events.py", "from ..state import state\n", "app.state.state"),
        ("workflows/store/db.py", "from .. import errors\n", "workflows.errors"),
    ],
)
def test_relative_imports_resolve_from_the_module(path: str, source: str, name: str) -> None:
    assert [n for _, n in imported(ast.parse(source), path)] == [name]


#: what `herald worker` imports before it loads a project (herald/worker.py's imports)
WORKER_START = (
    "herald.cli",
    "workers.agents",
    "workers.celery_app",
    "workers.heartbeat",
    "workers.sweep",
    "workers.tasks",
)
#: heavy libraries only some step kinds or the API need: a worker loads them on first use
LAZY = ("flask", "openai", "httpx", "pydantic", "cel", "prompt_toolkit")


def test_a_worker_does_not_load_the_api_model_clients_or_cel_at_start() -> None:
    script = (
        "import importlib, sys\n"
        f"for name in {WORKER_START!r}: importlib.import_module(name)\n"
        f"print(' '.join(name for name in {LAZY!r} if name in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == [], f"imported at worker start: {done.stdout.strip()}"
