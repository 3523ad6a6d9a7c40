"""The limits every template render runs under, and the checks that enforce them.

Jinja's sandbox keeps templates away from Python internals but not from running
long or building huge values; these checks do:

- every ``{% for %}`` item, call and filter counts against a per-render step budget
  (:data:`MAX_STEPS`) and a wall-clock budget (:data:`MAX_SECONDS`), so nested loops
  and recursive macros stop with a :class:`TemplateError` instead of hanging (Jinja's
  own ``MAX_RANGE`` bounds a single ``range`` only);
- ``*``, ``**``, ``+`` and ``%`` are checked before they run, so ``"x" * 100000000``
  or ``2 ** 100000000`` are refused without building the value;
- widths (``center(10**9)``, ``"%0999999999d"``) are refused before they are used;
- a rendered string may not exceed :data:`MAX_LENGTH` characters.

The budget of the render in progress lives in :data:`BUDGET`, a context variable,
so renders in different threads do not share it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from workflows.errors import TemplateError

#: longest string a template may render, in characters (1 MiB)
MAX_LENGTH = 1024 * 1024
#: loop iterations plus calls one render may make
MAX_STEPS = 100_000
#: JSON values (list items, object members) one render may produce
MAX_VALUES = 1_000_000
#: wall-clock seconds one render may take
MAX_SECONDS = 2.0
#: largest integer (in bits) arithmetic may produce
MAX_INT_BITS = 4096

_SEQUENCES = (str, list, tuple)
_WIDE_FORMAT = re.compile(r"\d{7,}")


@dataclass
class Budget:
    """What one render may still spend; lives in a context variable while rendering."""

    deadline: float = field(default_factory=lambda: time.monotonic() + MAX_SECONDS)
    steps: int = 0
    values: int = 0

    def tick(self) -> None:
        """Count one step; raise once the step or time budget is spent."""
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateError(f"runs more than {MAX_STEPS} loop iterations and calls")
        if self.steps % 64 == 0 and time.monotonic() > self.deadline:
            raise TemplateError(f"takes longer than {MAX_SECONDS:g}s to render")

    def count_value(self) -> None:
        """Count one JSON value produced; raise past :data:`MAX_VALUES`."""
        self.values += 1
        if self.values > MAX_VALUES:
            raise TemplateError(f"renders more than {MAX_VALUES} JSON values")
        if self.values % 4096 == 0 and time.monotonic() > self.deadline:
            raise TemplateError(f"takes longer than {MAX_SECONDS:g}s to render")


BUDGET: ContextVar[Budget | None] = ContextVar("herald_template_budget", default=None)


def tick() -> None:
    """Count a step against the current render's budget, if one is rendering."""
    budget = BUDGET.get()
    if budget is not None:
        budget.tick()


def count_value() -> None:
    """Count a JSON value against the current render's budget, if one is rendering."""
    budget = BUDGET.get()
    if budget is not None:
        budget.count_value()


def check_size(value: Any) -> None:
    """Refuse a string or list longer than :data:`MAX_LENGTH`."""
    if isinstance(value, str | list | tuple) and len(value) > MAX_LENGTH:
        raise TemplateError(f"builds a value longer than {MAX_LENGTH} characters")


def check_width(args: Iterable[Any]) -> None:
    """Refuse a width or count large enough to build a huge string (``center(10**9)``)."""
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_LENGTH:
            raise TemplateError(f"asks for a width of {arg}, more than {MAX_LENGTH}")


def check_expansion(name: str, value: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """Refuse a string filter or method call whose result would pass :data:`MAX_LENGTH`.

    ``name`` is the filter or ``str`` method (``indent``, ``replace``, ``center``...),
    ``value`` the string it works on; checked before the result is built.
    """
    check_width([*args, *kwargs.values()])
    if not isinstance(value, str):
        return
    if name == "indent":
        width = args[0] if args else kwargs.get("width", 4)
        pad = len(width) if isinstance(width, str) else width
        if isinstance(pad, int):
            _check_total(len(value) + (value.count("\n") + 1) * pad)
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str):
        old, new = args[0], args[1]
        count = value.count(old) if old else len(value) + 1
        _check_total(len(value) + count * len(str(new)))
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(size, int):
            _check_total(len(value) + value.count("\t") * size)


def _check_total(length: int) -> None:
    """Refuse a result of ``length`` characters past :data:`MAX_LENGTH`."""
    if length > MAX_LENGTH:
        raise TemplateError(f"builds a value longer than {MAX_LENGTH} characters")


def check_format(text: Any) -> None:
    """Refuse a format string with a huge width (``"%0999999999d"``)."""
    if isinstance(text, str) and _WIDE_FORMAT.search(text):
        raise TemplateError("formats with a width over 1000000")


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an arithmetic or repetition whose result would be too large to build."""
    if operator == "%":
        check_format(left)
    elif operator == "+" and isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        if len(left) + len(right) > MAX_LENGTH:
            raise TemplateError(f"builds a value longer than {MAX_LENGTH} characters")
    elif operator == "*" and isinstance(left, _SEQUENCES) and isinstance(right, int):
        check_repeat(len(left), right)
    elif operator == "*" and isinstance(right, _SEQUENCES) and isinstance(left, int):
        check_repeat(len(right), left)
    elif operator == "*" and isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateError(f"multiplies past {MAX_INT_BITS}-bit integers")
    elif operator == "**" and isinstance(left, int) and isinstance(right, int):
        check_power(left, right)


def check_power(base: int, exponent: int) -> None:
    """Refuse an integer power past :data:`MAX_INT_BITS` (``2 ** 100000000``)."""
    if abs(base) > 1 and exponent * base.bit_length() > MAX_INT_BITS:
        raise TemplateError(f"raises to a power past {MAX_INT_BITS}-bit integers")


def check_repeat(length: int, count: int) -> None:
    """Refuse repeating a sequence of ``length`` past :data:`MAX_LENGTH`."""
    if length * count > MAX_LENGTH:
        raise TemplateError(f"repeats a value past {MAX_LENGTH} characters")
