"""The Jinja sandbox herald renders templates in, and the limits it enforces.

Templates run in Jinja's :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`
(no ``_``-prefixed or internal attributes, no mutation of lists or dicts) with
``StrictUndefined`` semantics, and are bounded on top of it:

- every ``{% for %}`` loop item and every call counts against a per-render step
  budget (:data:`MAX_STEPS`) and a wall-clock budget (:data:`MAX_SECONDS`), so nested
  loops and recursive macros stop with a :class:`TemplateError` instead of hanging
  (Jinja's own ``range`` limit, ``MAX_RANGE``, bounds a single range only);
- ``*``, ``**``, ``+`` and ``%`` are checked before they run, so ``"x" * 100000000``
  or ``10 ** 10 ** 10`` are refused without building the value;
- a rendered string may not exceed :data:`MAX_LENGTH` characters;
- only JSON values come out: an embedded object renders as JSON text, and a Python
  object (a function, ``self``, ``cycler``...) is refused rather than shown.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache, wraps
from typing import Any

from jinja2 import StrictUndefined, Undefined, nodes
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from workflows.errors import TemplateError
from workflows.model import JSON
from workflows.template_paths import DATA_NAME, LOOKUP_NAME

#: longest string a template may render, in characters (1 MiB)
MAX_LENGTH = 1024 * 1024
#: loop iterations plus calls one render may make
MAX_STEPS = 100_000
#: wall-clock seconds one render may take
MAX_SECONDS = 2.0
#: largest integer (in bits) arithmetic may produce
MAX_INT_BITS = 4096

_SEQUENCES = (str, list, tuple)
_WIDE_FORMAT = re.compile(r"\d{7,}")
_WIDTH_FILTERS = frozenset({"center", "indent", "wordwrap", "truncate"})
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_ROOT_NAMES = "input, tasks, error, event, workflow, execution"


@dataclass
class Budget:
    """What one render may still spend; lives in a context variable while rendering."""

    deadline: float = field(default_factory=lambda: time.monotonic() + MAX_SECONDS)
    steps: int = 0

    def tick(self) -> None:
        """Count one step; raise once the step or time budget is spent."""
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateError(f"runs more than {MAX_STEPS} loop iterations and calls")
        if self.steps % 64 == 0 and time.monotonic() > self.deadline:
            raise TemplateError(f"takes longer than {MAX_SECONDS:g}s to render")


BUDGET: ContextVar[Budget | None] = ContextVar("herald_template_budget", default=None)


def _tick() -> None:
    """Count a step against the current render's budget, if one is rendering."""
    budget = BUDGET.get()
    if budget is not None:
        budget.tick()


def _check_size(value: Any) -> None:
    """Refuse a string or list longer than :data:`MAX_LENGTH`."""
    if isinstance(value, str | list | tuple) and len(value) > MAX_LENGTH:
        raise TemplateError(f"builds a value longer than {MAX_LENGTH} characters")


def _check_width(args: Iterable[Any]) -> None:
    """Refuse a width or count large enough to build a huge string (``center(10**9)``)."""
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_LENGTH:
            raise TemplateError(f"asks for a width of {arg}, more than {MAX_LENGTH}")


def _check_format(text: Any) -> None:
    """Refuse a format string with a huge width (``"%0999999999d"``)."""
    if isinstance(text, str) and _WIDE_FORMAT.search(text):
        raise TemplateError("formats with a width over 1000000")


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an arithmetic or repetition whose result would be too large to build."""
    if operator == "%":
        _check_format(left)
    elif operator == "+" and isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        if len(left) + len(right) > MAX_LENGTH:
            raise TemplateError(f"builds a value longer than {MAX_LENGTH} characters")
    elif operator == "*" and isinstance(left, _SEQUENCES) and isinstance(right, int):
        _check_repeat(len(left), right)
    elif operator == "*" and isinstance(right, _SEQUENCES) and isinstance(left, int):
        _check_repeat(len(right), left)
    elif operator == "*" and isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateError(f"multiplies past {MAX_INT_BITS}-bit integers")
    elif operator == "**" and isinstance(left, int) and isinstance(right, int):
        _check_power(left, right)


def _check_power(base: int, exponent: int) -> None:
    """Refuse an integer power past :data:`MAX_INT_BITS` (``2 ** 100000000``)."""
    if abs(base) > 1 and exponent * base.bit_length() > MAX_INT_BITS:
        raise TemplateError(f"raises to a power past {MAX_INT_BITS}-bit integers")


def _check_repeat(length: int, count: int) -> None:
    """Refuse repeating a sequence of ``length`` past :data:`MAX_LENGTH`."""
    if length * count > MAX_LENGTH:
        raise TemplateError(f"repeats a value past {MAX_LENGTH} characters")


def to_json(value: Any, depth: int = 0) -> JSON:
    """``value`` as a fresh JSON value; ``TemplateError`` for anything else (no repr leaks)."""
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises its own message naming the key
    if value is None or isinstance(value, bool | int | str):
        _check_size(value)
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
            if not isinstance(key, str):
                raise TemplateError("renders an object with a key that is not a string")
            result[key] = to_json(item, depth + 1)
        return result
    if isinstance(value, list | tuple | Iterator):
        items: list[JSON] = []
        for item in value:
            _tick()
            items.append(to_json(item, depth + 1))
        _check_size(items)
        return items
    raise TemplateError(
        f"renders a {type(value).__name__}, which is not a JSON value"
        " (a range or a mapping view needs '| list')"
    )


def to_text(value: Any) -> str:
    """How one ``{{ }}`` inside text renders: strings as they are, other JSON as JSON text."""
    if isinstance(value, str):
        return value
    return json.dumps(to_json(value), ensure_ascii=False, allow_nan=False)


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
        _tick()
        yield item


def guard_loops(tree: nodes.Template) -> None:
    """Rewrite every ``{% for %}`` in ``tree`` to iterate through :func:`_guard_loop`."""
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Call(
            nodes.Name("__herald_loop", "load"), [loop.iter], [], None, None, lineno=loop.lineno
        )


def _guard_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that checks its widths and result size (keeps Jinja's pass markers)."""
    skip = 2 if getattr(function, "jinja_pass_arg", None) is not None else 1

    @wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        if name in _WIDTH_FILTERS:
            _check_width(args[skip:])
            _check_width(kwargs.values())
        elif name == "format":
            _check_format(args[skip - 1])
        result = function(*args, **kwargs)
        _check_size(result)
        return result

    return guarded


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with herald's budget, size checks and JSON output."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Check the operands before the operation builds anything."""
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Check a ``str.format`` string's widths when the method is looked up."""
        name = getattr(value, "__name__", None)
        if name in ("format", "format_map") and isinstance(getattr(value, "__self__", None), str):
            _check_format(value.__self__)
        return super().wrap_str_format(value)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Every call (functions, methods, macros) counts against the budget."""
        _tick()
        if isinstance(getattr(__obj, "__self__", None), str) and __obj.__name__ in _WIDTH_METHODS:
            _check_width(args)
        result = super().call(__context, __obj, *args, **kwargs)
        _check_size(result)
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
    }
    filters = {name: _guard_filter(name, f) for name, f in env.filters.items() if name != "pprint"}
    filters["string"] = _guard_filter("string", to_text)
    env.filters = filters
    return env


def variables(context: Mapping[str, JSON]) -> dict[str, Any]:
    """The render variables for ``context``: its roots by name, and the data paths read."""
    return {**context, DATA_NAME: context}
