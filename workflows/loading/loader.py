"""Loads a herald project: discovers its files, resolves and validates them, builds the model.

Discovery: the project directory's ``herald.yaml`` (if present), plus every file
matching the ``workflows`` globs (default ``**/*.yaml`` and ``**/*.yml``) below
it, skipping hidden directories, ``.venv``, ``venv``, ``node_modules``,
``__pycache__`` and any file named ``herald.yaml``/``herald.yml``. Files load in
sorted path order; every YAML document in them must be a workflow.

Every problem found is collected; if any is an error, :func:`load_project`
raises :class:`~workflows.errors.DefinitionError` with all of them and nothing
is loaded.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

from workflows.errors import DefinitionError, Problem
from workflows.loading.discovery import DEFAULT_GLOBS, PROJECT_FILES, discover, glob_problem
from workflows.loading.parts_builder import PartsBuilder, Shared, TemplateTools
from workflows.loading.references import Resolver
from workflows.loading.validation import PROJECT_SCHEMA, WORKFLOW_SCHEMA, check_structure
from workflows.loading.workflow_builder import WorkflowBuilder
from workflows.loading.yamlsource import Document, format_path, parse_file
from workflows.model import Project, Workflow
from workflows.templates import check_syntax, references


def load_project(root: Path) -> Project:
    """Load every definition under ``root``; raise DefinitionError listing every error."""
    root = Path(root).resolve()
    problems: list[Problem] = []
    templates = TemplateTools(check_syntax, references)
    if not root.is_dir():
        raise DefinitionError([Problem(str(root), 1, "", "project directory not found")])
    shared, globs, project_file = _load_project_file(root, problems, templates)
    files = discover(root, globs)
    workflows: dict[str, Workflow] = {}
    seen: dict[str, str] = {}  # workflow id -> where it was first declared
    for path in files:
        rel = path.relative_to(root).as_posix()
        docs, parse_problems = parse_file(path, rel)
        problems.extend(parse_problems)
        for doc in docs:
            workflow = _load_workflow(doc, shared, problems, templates)
            workflow_id = doc.data.get("id") if isinstance(doc.data, dict) else None
            if isinstance(workflow_id, str):
                where = f"{doc.file}:{doc.line_of(('id',))}"
                if workflow_id in seen:
                    message = f"duplicate workflow id {workflow_id!r} (also at {seen[workflow_id]})"
                    problems.append(doc.problem(("id",), message))
                    continue
                seen[workflow_id] = where
            if workflow is not None:
                workflows[workflow.id] = workflow
    loaded = tuple(path.relative_to(root).as_posix() for path in files)
    rank = {name: i for i, name in enumerate(((project_file,) if project_file else ()) + loaded)}
    problems.sort(key=lambda p: (rank.get(p.file, -1), p.line))
    errors = [p for p in problems if not p.warning]
    if errors:
        raise DefinitionError(errors + [p for p in problems if p.warning])
    return Project(
        root=root,
        workflows=MappingProxyType(workflows),
        models=MappingProxyType(shared.models),
        tools=MappingProxyType(shared.tools),
        agents=MappingProxyType(shared.agents),
        defaults=shared.defaults,
        files=((project_file,) if project_file else ()) + loaded,
        warnings=tuple(p for p in problems if p.warning),
    )


def _load_project_file(
    root: Path, problems: list[Problem], templates: TemplateTools
) -> tuple[Shared, tuple[str, ...], str | None]:
    """``herald.yaml``'s shared pieces, the workflow globs and the file's name (if any)."""
    path = next((root / n for n in PROJECT_FILES if (root / n).is_file()), None)
    if path is None:
        return Shared(), DEFAULT_GLOBS, None
    docs, parse_problems = parse_file(path, path.name)
    problems.extend(parse_problems)
    if not docs:
        return Shared(data={}), DEFAULT_GLOBS, path.name
    for extra in docs[1:]:
        problems.append(extra.problem((), f"{path.name} must hold a single YAML document"))
    doc = docs[0]
    data = _resolve_and_check(doc, doc.data, PROJECT_SCHEMA, problems)
    builder = PartsBuilder(doc, problems, templates)
    shared = Shared(data=data if isinstance(data, dict) else {})
    shared.defaults = builder.defaults(shared.data.get("defaults"), shared.defaults)
    shared.models = builder.collection("models", data)
    shared.tools = builder.collection("tools", data)
    shared.agents = builder.collection("agents", data)
    globs = shared.data.get("workflows")
    if not isinstance(globs, list) or not all(isinstance(g, str) for g in globs):
        return shared, DEFAULT_GLOBS, path.name  # absent, or already reported as ill-typed
    for index, pattern in enumerate(globs):
        if (message := glob_problem(pattern)) is not None:
            problems.append(doc.problem(("workflows", index), message))
    return shared, tuple(globs), path.name


def _load_workflow(
    doc: Document, shared: Shared, problems: list[Problem], templates: TemplateTools
) -> Workflow | None:
    """Resolve, check and build one workflow document."""
    if not isinstance(doc.data, dict) or not ({"id", "tasks"} & doc.data.keys()):
        problems.append(
            doc.problem(
                (),
                "not a workflow (a workflow has 'id' and 'tasks'); if this file is not a "
                "workflow, narrow the `workflows` globs in herald.yaml",
            )
        )
        return None
    before = len(problems)
    data = _resolve_and_check(doc, shared.data, WORKFLOW_SCHEMA, problems)
    workflow = WorkflowBuilder(doc, problems, templates).workflow(data, shared)
    if workflow is None and not any(not p.warning for p in problems[before:]):
        # never drop a workflow silently: what refused it must be visible
        problems.append(doc.problem((), "the workflow could not be built"))
    return workflow


def _resolve_and_check(doc: Document, shared: Any, schema: str, problems: list[Problem]) -> Any:
    """The document's data with its references resolved, checked against ``schema``.

    A structural problem inside a reference that failed is left out: the failed
    reference is the problem worth reading.
    """
    resolver = Resolver(doc.data, shared)
    data = resolver.resolve()
    problems.extend(doc.problem(path, message) for path, message in resolver.problems)
    failed = [format_path(path[:-1]) for path, _ in resolver.problems if path[:-1]]
    problems.extend(
        p
        for p in check_structure(doc, data, schema)
        if not any(p.path == f or p.path.startswith((f + ".", f + "[")) for f in failed)
    )
    return data
