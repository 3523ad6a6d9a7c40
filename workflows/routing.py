"""Trigger names with wildcards, and finding every trigger an event name matches.

A trigger name is a dotted name whose segments may be wildcards:

- ``*`` is exactly one segment: ``order.*`` matches ``order.created``, not
  ``order.item.added``; ``*.created`` matches ``order.created``, not ``order.created.v2``;
- ``**`` is any number of segments, none included: ``order.**`` matches
  ``order.created`` and ``order.item.added``; ``a.**.z`` matches ``a.z`` and ``a.b.c.z``;
  ``**`` alone matches every name.

A segment is a wildcard or a literal, never a mix (``ord*`` is refused at load).
Patterns are indexed in a segment trie (:class:`PatternIndex`): matching a name
walks the trie one segment at a time, so its cost depends on the name's length
and on the wildcards that can match it, never on how many triggers exist.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

#: one segment of a trigger name: a literal, ``*`` or ``**``
SEGMENT = r"(?:[A-Za-z0-9_-]+|\*\*?)"
#: a trigger name: dotted segments, each a literal or a wildcard
TRIGGER_NAME = re.compile(rf"{SEGMENT}(?:\.{SEGMENT})*")

T = TypeVar("T")


def is_pattern(name: str) -> bool:
    """Whether the trigger name ``name`` has a wildcard segment."""
    return "*" in name


@dataclass
class _Node(Generic[T]):
    literal: dict[str, _Node[T]] = field(default_factory=dict)
    #: the child under a ``*`` segment
    star: _Node[T] | None = None
    #: the child under a ``**`` segment (it consumes any number of further segments)
    globstar: _Node[T] | None = None
    #: values of the patterns that end here
    values: list[T] = field(default_factory=list)


@dataclass(frozen=True)
class Match(Generic[T]):
    """What matching one name found, and the trie nodes it visited to find it."""

    values: list[T]
    #: nodes looked at: bounded by the name's segments times the wildcards on its path
    visited: int


class PatternIndex(Generic[T]):
    """Wildcard trigger names -> values, matched by walking a segment trie."""

    def __init__(self, entries: Iterable[tuple[str, T]] = ()) -> None:
        self._root: _Node[T] = _Node()
        self.size = 0
        for pattern, value in entries:
            self.add(pattern, value)

    def add(self, pattern: str, value: T) -> None:
        """Index ``value`` under ``pattern`` (a trigger name, see the module's doc)."""
        node = self._root
        for segment in pattern.split("."):
            if segment == "*":
                node.star = node.star or _Node()
                node = node.star
            elif segment == "**":
                node.globstar = node.globstar or _Node()
                node = node.globstar
            else:
                node = node.literal.setdefault(segment, _Node())
        node.values.append(value)
        self.size += 1

    def match(self, name: str) -> Match[T]:
        """Every value whose pattern matches ``name``, in the order they were added per node."""
        visited = 0
        # each state is (node, inside): ``inside`` when the node is a ``**`` that may go on
        states = self._closure([(self._root, False)])
        for segment in name.split("."):
            following: list[tuple[_Node[T], bool]] = []
            for node, inside in states:
                visited += 1
                child = node.literal.get(segment)
                if child is not None:
                    following.append((child, False))
                if node.star is not None:
                    following.append((node.star, False))
                if inside:
                    following.append((node, True))
            states = self._closure(following)
            if not states:
                return Match([], visited)
        found: list[T] = []
        seen: set[int] = set()
        for node, _ in states:
            visited += 1
            if id(node) not in seen:
                seen.add(id(node))
                found.extend(node.values)
        return Match(found, visited)

    @staticmethod
    def _closure(states: list[tuple[_Node[T], bool]]) -> list[tuple[_Node[T], bool]]:
        """``states`` and, for each, its ``**`` child (zero segments consumed); no duplicates."""
        out: list[tuple[_Node[T], bool]] = []
        seen: set[tuple[int, bool]] = set()
        stack = list(reversed(states))
        while stack:
            node, inside = stack.pop()
            key = (id(node), inside)
            if key in seen:
                continue
            seen.add(key)
            out.append((node, inside))
            if node.globstar is not None:
                stack.append((node.globstar, True))
        return out
