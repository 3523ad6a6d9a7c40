"""Expressions of the workflow language, in CEL (Common Expression Language), compiled at load.

A router's ``condition`` (and, as they come, a collection's ``filter``, a wait's
``condition``) is one CEL expression over the execution's data::

    input.shippingAddress.country
    tasks["check-inventory"].output.available && input.totalAmount < 1000.0
    input.items.filter(i, i.quantity > 0).map(i, i.productId)

The variables are ``input`` (the workflow input), ``tasks`` (``{id: {"output",
"status", "error"}}`` of finished tasks: ``tasks.validate.output``, or
``tasks["check-inventory"]`` for an id with a dash), ``event`` (the event),
``error`` (what led into an ``on_error`` target), and ``item``/``index`` where
a task runs per item. Each place says which of them it offers; any other name
is refused when the project loads, as is a syntax error.

CEL is evaluated by the ``common-expression-language`` package (Python bindings
of the Rust ``cel-interpreter``): no statements, no I/O, no loops beyond the
bounded macros, so a definition cannot make a worker do anything but compute a
value. An expression is compiled once, by the loader; a step only evaluates it.
The package is imported on the first compile: a project without expressions
(and so a worker of one) never loads it (~12 MB of RSS, its CLI's libraries included).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from workflows.errors import HeraldError

#: every variable an expression may read somewhere
VARIABLES = ("input", "tasks", "event", "error", "item", "index")

#: ``list.map(x, ...)`` and the other macros bind a variable of their own
_MACRO_BINDING = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")
#: ``tasks.<id>`` and ``tasks["<id>"]``: the task ids an expression reads
_TASK_READ = re.compile(
    r"(?<![.\w])tasks\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*(?:\"([^\"]*)\"|'([^']*)')\s*\])"
)
#: where the parser put the first error: ``ERROR: <input>:1:17: Syntax error: ...``
_PARSE_ERROR = re.compile(r"ERROR: <input>:(\d+):(\d+): (.*)")


class ExpressionError(HeraldError):
    """An expression does not compile: bad syntax, or a variable that is not offered there."""


class ExpressionFailed(HeraldError):
    """An expression could not be evaluated on a step's data (a missing key, mixed types...)."""


@dataclass(frozen=True)
class Expression:
    """A compiled CEL expression and the variables it reads."""

    source: str
    program: Any = field(repr=False, compare=False)
    #: the context variables it reads (those it binds in a macro left out)
    variables: tuple[str, ...] = ()

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """The value of the expression on ``context``, as JSON data.

        Only the variables it reads are handed to CEL (converting the rest would
        cost for nothing). Raises :class:`ExpressionFailed` with a message that
        names the expression.
        """
        scope: dict[str, Any] = {}
        for name in self.variables:
            if name not in context:
                raise ExpressionFailed(f"expression {self.source!r}: {name!r} is not set here")
            scope[name] = context[name]
        try:
            value = self.program.execute(scope)
        except KeyError as exc:
            raise ExpressionFailed(f"expression {self.source!r}: no key {exc.args[0]!r}") from None
        except (TypeError, ValueError, RuntimeError, ZeroDivisionError, OverflowError) as exc:
            raise ExpressionFailed(f"expression {self.source!r}: {_first_line(exc)}") from None
        return _json(value)


def compile_expression(source: str, allowed: Iterable[str]) -> Expression:
    """Compile ``source``; raises :class:`ExpressionError` for bad syntax or an unknown variable.

    ``allowed`` names the variables the place of the expression offers.
    """
    if not source.strip():
        raise ExpressionError("empty expression")
    import cel  # lazily: see the module's docstring

    try:
        program = cel.compile(source)
    except (ValueError, RuntimeError) as exc:
        raise ExpressionError(_syntax_message(str(exc))) from None
    bound = set(_MACRO_BINDING.findall(source))
    used = [name for name in program.variables() if name not in bound]
    offered = list(allowed)
    unknown = [name for name in used if name not in offered]
    if unknown:
        names = ", ".join(repr(n) for n in unknown)
        raise ExpressionError(
            f"unknown variable {names} in expression {source!r} (variables here: "
            f"{', '.join(offered)})"
        )
    return Expression(source, program, tuple(used))


def task_reads(source: str) -> set[str]:
    """The task ids an expression reads through ``tasks.<id>`` or ``tasks["<id>"]``."""
    return {next(g for g in m.groups() if g is not None) for m in _TASK_READ.finditer(source)}


def route_key(value: Any) -> str:
    """How a router's value is looked up among its routes (YAML keys are strings).

    A string is itself; ``true``/``false``/``null`` and numbers are their JSON
    text (``1``, ``2.5``; an integral double such as ``2.0`` is ``2``).
    """
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _json(value: Any) -> Any:
    """A CEL value as JSON data: timestamps as ISO text, durations as seconds."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _syntax_message(raw: str) -> str:
    """The parser's first error as one line: ``syntax error at column 17: ...``."""
    found = _PARSE_ERROR.search(raw)
    if found is None:
        return f"invalid expression: {_first_line(raw)}"
    line, column, what = found.groups()
    what = what.removeprefix("Syntax error: ")
    where = f"column {column}" if line == "1" else f"line {line}, column {column}"
    return f"expression syntax error at {where}: {what}"


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else type(value).__name__
