"""Compile once, render often: how a template string becomes a JSON value.

A string that is one ``{{ }}`` with at most whitespace around it is a whole value
and keeps the JSON type of what it reads; anything else renders a string, with
objects, numbers, booleans and null embedded as JSON text. Paths are translated
first (:mod:`workflows.templates.paths`); rendering is sandboxed
(:mod:`workflows.templates.sandbox`) and bounded (:mod:`workflows.templates.limits`).

Each distinct template string is compiled once and cached; strings without
``{{`` or ``{%`` are returned untouched without any Jinja work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import nodes

from workflows.errors import TemplateError
from workflows.model import JSON
from workflows.templates.limits import BUDGET, MAX_LENGTH, Budget
from workflows.templates.paths import has_template, translate
from workflows.templates.sandbox import environment, guard, to_json, variables

#: errors a template's own code can raise while it renders
_RENDER_ERRORS = (
    jinja2.TemplateError,
    ArithmeticError,
    LookupError,
    TypeError,
    ValueError,
    AttributeError,
    RecursionError,
    MemoryError,
)


@dataclass(frozen=True)
class _Compiled:
    """A compiled template: a whole-value expression or text."""

    template: jinja2.Template
    #: the string is one ``{{ }}`` and keeps the JSON type of its value
    whole: bool


def _quote(text: str) -> str:
    """The template as error messages name it, shortened when long."""
    return f'"{text}"' if len(text) <= 120 else f'"{text[:117]}..."'


@lru_cache(maxsize=4096)
def _compile(text: str) -> _Compiled:
    """Translate, parse and compile ``text`` once; ``TemplateError`` naming what is wrong."""
    env = environment()
    try:
        tree = env.parse(translate(text).source)
        expression = _whole_expression(tree)
        if expression is not None:
            tree = nodes.Template(
                [nodes.Assign(nodes.Name("result", "store"), expression, lineno=1)], lineno=1
            )
            tree.set_environment(env)
        guard(tree)
        template = env.from_string(tree)
    except TemplateError as error:
        raise TemplateError(f"template {_quote(text)}: {error.message}") from None
    except jinja2.TemplateSyntaxError as error:
        raise TemplateError(
            f"template {_quote(text)}: line {error.lineno}: {error.message}"
        ) from None
    return _Compiled(template, whole=expression is not None)


def _whole_expression(tree: nodes.Template) -> nodes.Expr | None:
    """The expression when the template is one ``{{ }}`` with at most whitespace around it."""
    if len(tree.body) != 1 or not isinstance(tree.body[0], nodes.Output):
        return None
    expressions = [
        node
        for node in tree.body[0].nodes
        if not (isinstance(node, nodes.TemplateData) and not node.data.strip())
    ]
    if len(expressions) != 1 or isinstance(expressions[0], nodes.TemplateData):
        return None
    return expressions[0]


def check_syntax(text: str) -> str | None:
    """``None`` when ``text`` compiles as a template; otherwise a readable message."""
    if not has_template(text):
        return None
    try:
        _compile(text)
    except TemplateError as error:
        return error.message
    return None


def references(text: str) -> set[tuple[str, ...]]:
    """The dotted paths ``text`` reads, e.g. ``{("tasks", "check-inventory", "output")}``.

    Empty when ``text`` has no template or does not compile (:func:`check_syntax` says why).
    """
    if not has_template(text):
        return set()
    try:
        return set(translate(text).paths)
    except TemplateError:
        return set()


def render(value: JSON, context: Mapping[str, JSON]) -> JSON:
    """Render every string inside ``value`` (dict values and list items, not keys).

    A string that is one template keeps the JSON type of what it reads; text around a
    template renders a string. Raises :class:`TemplateError` on a missing key, a
    sandbox violation or a limit.
    """
    token = BUDGET.set(Budget())
    try:
        return _render(value, variables(context))
    finally:
        BUDGET.reset(token)


def _render(value: JSON, data: dict[str, Any]) -> JSON:
    """Walk ``value``, rendering its template strings with the render variables ``data``."""
    if isinstance(value, str):
        return _render_string(value, data) if has_template(value) else value
    if isinstance(value, Mapping):
        return {key: _render(item, data) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_render(item, data) for item in value]
    return value


def _render_string(text: str, data: dict[str, Any]) -> JSON:
    """Render one template string."""
    compiled = _compile(text)
    template = compiled.template
    try:
        context = template.new_context(data)
        if compiled.whole:
            for _ in template.root_render_func(context):
                pass
            return to_json(context.vars["result"])
        chunks: list[str] = []
        length = 0
        for chunk in template.root_render_func(context):
            length += len(chunk)
            if length > MAX_LENGTH:
                raise TemplateError(f"renders more than {MAX_LENGTH} characters")
            chunks.append(chunk)
        return "".join(chunks)
    except TemplateError as error:
        raise TemplateError(f"template {_quote(text)}: {error.message}") from None
    except jinja2.UndefinedError as error:
        raise TemplateError(f"template {_quote(text)}: {error.message}") from None
    except _RENDER_ERRORS as error:
        raise TemplateError(f"template {_quote(text)}: {type(error).__name__}: {error}") from None
