"""A bounded sample of a refused payload, so that explaining a 422 costs a bounded amount.

``jsonschema_rs`` (0.60) builds every error of an instance before ``iter_errors``
yields the first: for a body whose ``items`` hold 30,000 empty objects that is
90,000 errors and 0.6 s, whatever is shown of them. So a payload the validator
refused is explained from a sample: the first ``per_container`` members of each
object and array, breadth first, at most ``budget`` values in all. Errors of the
sample are then kept only where they hold for the whole payload too
(:meth:`Sample.holds`):

- every error, when nothing was cut;
- an error at a place whose whole subtree is in the sample: the keywords that
  produced it saw what the payload has there (structural keywords pick
  subschemas by key and index only, and ``anyOf``, ``oneOf``, ``not`` report at
  their own place);
- at a place that lost members, only what cutting cannot make up: a wrong
  type, a key no schema allows, too many members, and a missing required
  property that the payload itself lacks too.

A schema with keywords that apply subschemas depending on values elsewhere
(``if``/``then``/``else``, ``dependentSchemas``, ``unevaluated*``,
``$dynamicRef``) trusts nothing of a cut sample: see :func:`has_conditionals`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema_rs import ValidationError, ValidationErrorKind

_Path = tuple[str | int, ...]

#: keywords whose subschemas apply depending on values elsewhere in the instance
CONDITIONAL_KEYWORDS = frozenset(
    {
        "if",
        "then",
        "else",
        "dependentSchemas",
        "unevaluatedProperties",
        "unevaluatedItems",
        "$dynamicRef",
        "$recursiveRef",
    }
)
#: error kinds that a place missing members cannot make up (Required is checked apart)
_CUT_PROOF = (
    ValidationErrorKind.Type,
    ValidationErrorKind.AdditionalProperties,
    ValidationErrorKind.MaxItems,
    ValidationErrorKind.MaxProperties,
)


@dataclass(frozen=True)
class Sample:
    """A copy of the first members of a payload, and where members were left out."""

    #: the sample (the payload itself when nothing was cut)
    value: Any
    #: the payload the sample was taken from
    payload: Any
    #: the places that lost members, and every place above them
    partial: frozenset[_Path]

    @property
    def cut(self) -> bool:
        """Whether anything of the payload was left out."""
        return bool(self.partial)

    def holds(self, error: ValidationError, *, conditional: bool) -> bool:
        """Whether ``error``, found in the sample, is an error of the whole payload too.

        ``conditional``: the schema has :data:`CONDITIONAL_KEYWORDS`.
        """
        if not self.cut:
            return True
        if conditional:
            return False
        place = tuple(error.instance_path)
        if place not in self.partial:
            return True  # its whole subtree is in the sample
        kind = error.kind
        if isinstance(kind, ValidationErrorKind.Required):
            original = _at(self.payload, place)
            return isinstance(original, Mapping) and kind.property not in original
        return isinstance(kind, _CUT_PROOF)


def take(payload: Any, *, per_container: int, budget: int) -> Sample:
    """The first ``per_container`` members of each object and array, at most ``budget`` values.

    Breadth first, so the top of the payload is always there; iterative.
    """
    if not isinstance(payload, dict | list):
        return Sample(payload, payload, frozenset())
    root: dict[Any, Any] | list[Any] = {} if isinstance(payload, dict) else []
    queue: deque[tuple[Any, Any, _Path]] = deque([(payload, root, ())])
    taken = 1
    cut: list[_Path] = []
    while queue:
        source, copy, place = queue.popleft()
        members = source.items() if isinstance(source, dict) else enumerate(source)
        for kept, (key, value) in enumerate(members):
            if kept == per_container or taken >= budget:
                cut.append(place)
                break
            taken += 1
            if isinstance(value, dict | list):
                inner: Any = {} if isinstance(value, dict) else []
                queue.append((value, inner, (*place, key)))
                value = inner
            if isinstance(copy, dict):
                copy[key] = value
            else:
                copy.append(value)
    if not cut:
        return Sample(payload, payload, frozenset())
    return Sample(root, payload, _with_ancestors(cut))


def has_conditionals(schema: Any) -> bool:
    """Whether a schema uses :data:`CONDITIONAL_KEYWORDS` anywhere (a property of that name
    counts too: the answer errs on the safe side). Iterative."""
    stack = [schema]
    while stack:
        value = stack.pop()
        if isinstance(value, Mapping):
            if CONDITIONAL_KEYWORDS.intersection(value):
                return True
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return False


def _with_ancestors(places: list[_Path]) -> frozenset[_Path]:
    partial: set[_Path] = set()
    for place in places:
        while place not in partial:
            partial.add(place)
            if not place:
                break
            place = place[:-1]
    return frozenset(partial)


def _at(payload: Any, place: _Path) -> Any:
    """The value of the payload at ``place`` (which the sample has, so the payload has too)."""
    value = payload
    for key in place:
        value = value[key]
    return value
