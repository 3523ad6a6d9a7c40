"""The Jinja sandbox herald renders templates in.

Templates run in Jinja's :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`
(no ``_``-prefixed or internal attributes, no mutation of lists or dicts) with
``StrictUndefined`` semantics, the limits of :mod:`workflows.templates.limits`, and
only JSON coming out: a whole-value template yields a fresh JSON value, an object
embedded in text (``{{ }}``, ``~``, ``join``, ``string``, ``%``, ``format``) renders
as JSON text, and a Python object (a function, ``self``, ``range``...) is refused
rather than shown. Only ``range``, ``dict`` and ``namespace`` remain as globals.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from functools import cache, wraps
from typing import Any

from jinja2 import StrictUndefined, Undefined, nodes
from jinja2.filters import make_attrgetter
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from workflows.errors import TemplateError
from workflows.model import JSON
from workflows.templates.limits import (
    check_binop,
    check_expansion,
    check_format,
    check_size,
    count_value,
    tick,
)
from workflows.templates.paths import DATA_NAME, LOOKUP_NAME

#: filters and ``str`` methods that can build a string much longer than their input
_EXPANDING = frozenset(
    {"center", "indent", "wordwrap", "truncate", "replace", "ljust", "rjust", "zfill", "expandtabs"}
)
_ROOT_NAMES = "input, tasks, error, event, workflow, execution"


def to_json(value: Any, depth: int = 0) -> JSON:
    """``value`` as a fresh JSON value; ``TemplateError`` for anything else (no repr leaks)."""
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises its own message naming the key
    if value is None or isinstance(value, bool | int | str):
        check_size(value)
        return str(value) if isinstance(value, str) else value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TemplateError(f"renders {value}, which JSON cannot hold")
        return value
    if depth > 100:
        raise TemplateError("renders a value nested more than 100 levels deep")
    if isinstance(value, Mapping):
        result: dict[str, JSON] = {}
        for key, item in value.items():
            count_value()
            if not isinstance(key, str):
                raise TemplateError("renders an object with a key that is not a string")
            result[key] = to_json(item, depth + 1)
        return result
    if isinstance(value, list | tuple | Iterator):
        items: list[JSON] = []
        for item in value:
            count_value()
            items.append(to_json(item, depth + 1))
        check_size(items)
        return items
    raise TemplateError(
        f"renders a {type(value).__name__}, which is not a JSON value"
        " (a range or a mapping view needs '| list')"
    )


def to_text(value: Any) -> str:
    """How one ``{{ }}`` inside text renders: strings as they are, other JSON as JSON text."""
    if isinstance(value, str):
        check_size(value)
        return value
    return json.dumps(to_json(value), ensure_ascii=False, allow_nan=False)


def check_plain(value: Any, depth: int = 0) -> None:
    """Refuse a value that is not plain JSON, without consuming it (format arguments)."""
    if value is None or isinstance(value, bool | int | float | str):
        return
    if depth > 100:
        raise TemplateError("formats a value nested more than 100 levels deep")
    if isinstance(value, Mapping):
        for item in value.values():
            check_plain(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            check_plain(item, depth + 1)
    elif isinstance(value, Undefined):
        str(value)  # StrictUndefined raises its own message naming the key
    else:
        raise TemplateError(f"formats a {type(value).__name__}, which is not a JSON value")


def _join(value: Any, separator: str = "", attribute: str | int | None = None) -> str:
    """The ``join`` filter, each item as JSON text (never a Python repr)."""
    check_plain(separator)
    if attribute is not None:
        getter = make_attrgetter(environment(), attribute)
        value = [getter(item) for item in value]
    result = str(separator).join(to_text(item) for item in to_json(value))
    check_size(result)
    return result


def _finalize(value: Any) -> Any:
    """Jinja's ``finalize`` hook: leave undefined values to raise, the rest to :func:`to_text`."""
    if isinstance(value, Undefined):
        return value
    return to_text(value)


def lookup(data: Mapping[str, JSON], *keys: str) -> Any:
    """Follow a leading-dot path through the data; an undefined value naming the missing key."""
    current: Any = data
    where = ""
    for key in keys:
        if isinstance(current, Mapping) and key in current:
            current = current[key]
        elif isinstance(current, list) and key.isdigit():
            if int(key) >= len(current):
                hint = f"index {key} out of range in {where} (it has {len(current)} items)"
                return StrictUndefined(hint=hint)
            current = current[int(key)]
        elif not where:
            return StrictUndefined(hint=f'key "{key}" not found (the context has {_ROOT_NAMES})')
        elif where == ".tasks":
            hint = f'key "{key}" not found in .tasks (task "{key}" has not run in this execution)'
            return StrictUndefined(hint=hint)
        elif isinstance(current, Mapping | list):
            return StrictUndefined(hint=f'key "{key}" not found in {where}')
        else:
            kind = "null" if current is None else type(current).__name__
            return StrictUndefined(hint=f'key "{key}" not found in {where} (a {kind})')
        where += f".{key}"
    return current


def _guard_loop(iterable: Any) -> Iterator[Any]:
    """Wraps every ``{% for %}`` iterable so each item counts against the budget."""
    if isinstance(iterable, Undefined):
        iter(iterable)  # StrictUndefined raises its own message
    for item in iterable:
        tick()
        yield item


def guard(tree: nodes.Node) -> None:
    """Rewrite ``tree``: every ``{% for %}`` iterates through :func:`_guard_loop`, and
    every operand of ``~`` goes through :func:`to_text` (JSON text, never a repr)."""
    for loop in tree.find_all(nodes.For):
        loop.iter = _call("__herald_loop", loop.iter)
    for concat in tree.find_all(nodes.Concat):
        concat.nodes = [_call("__herald_text", operand) for operand in concat.nodes]


def _call(function: str, argument: nodes.Node) -> nodes.Call:
    """The node calling the global ``function`` with ``argument``."""
    return nodes.Call(
        nodes.Name(function, "load", lineno=argument.lineno),
        [argument],
        [],
        None,
        None,
        lineno=argument.lineno,
    )


def _guard_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that checks its widths and result size (keeps Jinja's pass markers)."""
    skip = 2 if getattr(function, "jinja_pass_arg", None) is not None else 1

    @wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        tick()
        if name in _EXPANDING:
            check_expansion(name, args[skip - 1], args[skip:], kwargs)
        elif name == "format":
            check_format(args[skip - 1])
            check_plain(args[skip:])
            check_plain(kwargs)
        result = function(*args, **kwargs)
        check_size(result)
        return result

    return guarded


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with herald's budget, size checks and JSON output."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Check the operands before the operation builds anything."""
        check_binop(operator, left, right)
        if operator == "%" and isinstance(left, str):
            check_plain(right)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Check a ``str.format`` string's widths when the method is looked up."""
        name = getattr(value, "__name__", None)
        if name in ("format", "format_map") and isinstance(getattr(value, "__self__", None), str):
            check_format(value.__self__)
        formatter = super().wrap_str_format(value)
        if formatter is None:
            return None
        sandboxed = formatter

        def checked(*args: Any, **kwargs: Any) -> str:
            check_plain(args)
            check_plain(kwargs)
            return sandboxed(*args, **kwargs)

        return checked

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Every call (functions, methods, macros) counts against the budget."""
        tick()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str) and getattr(__obj, "__name__", None) in _EXPANDING:
            check_expansion(__obj.__name__, owner, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        check_size(result)
        return result


@cache
def environment() -> Sandbox:
    """The one sandbox every template compiles in (built on first use, not at import)."""
    env = Sandbox(
        undefined=StrictUndefined,
        finalize=_finalize,
        autoescape=False,
        keep_trailing_newline=True,
        cache_size=0,
    )
    env.globals = {
        "range": env.globals["range"],
        "dict": env.globals["dict"],
        "namespace": env.globals["namespace"],
        LOOKUP_NAME: lookup,
        "__herald_loop": _guard_loop,
        "__herald_text": to_text,
    }
    filters = {name: _guard_filter(name, f) for name, f in env.filters.items() if name != "pprint"}
    filters["string"] = _guard_filter("string", to_text)
    filters["join"] = _guard_filter("join", _join)
    env.filters = filters
    return env


def variables(context: Mapping[str, JSON]) -> dict[str, Any]:
    """The render variables for ``context``: its roots by name, and the data paths read."""
    return {**context, DATA_NAME: context}
