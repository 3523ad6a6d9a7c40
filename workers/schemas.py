"""Tool and agent input and output schemas: compiled once each, checked with jsonschema_rs.

The engine trigger schemas use (:mod:`workflows.payload_schema`): compiled Rust,
``format`` asserted, and regular expressions that run in linear time, so that a
``pattern`` such as ``^(a+)+$`` costs a long string no more than ``^a+$`` does
(Python's backtracking engine took exponential time). A schema is compiled the
first time a step uses it and kept under its canonical JSON text, so that a
copy of it (an agent's schema is thawed per call) finds it too: at most
:data:`CACHED` schemas per process, the least recently used going first.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema_rs import Validator

from workflows.model import JSON
from workflows.payload_schema import UncompilableSchema, compile_step_schema

#: schemas kept compiled per process
CACHED = 1024

_compiled: OrderedDict[str, Validator] = OrderedDict()
_lock = threading.Lock()


@dataclass(frozen=True)
class Mismatch:
    """One place where a value breaks its schema."""

    #: the path into the value (keys and indexes); ``()`` for the value itself
    path: tuple[str | int, ...]
    message: str


def validator(schema: Mapping[str, Any]) -> Validator:
    """The compiled validator of ``schema``; :class:`UncompilableSchema` if it cannot be."""
    key = json.dumps(schema, sort_keys=True, default=_plain)
    with _lock:
        hit = _compiled.get(key)
        if hit is not None:
            _compiled.move_to_end(key)
            return hit
    compiled = compile_step_schema(json.loads(key))  # outside the lock: it may take a while
    with _lock:
        _compiled[key] = compiled
        while len(_compiled) > CACHED:
            _compiled.popitem(last=False)
    return compiled


def mismatches(schema: Mapping[str, Any], value: JSON, *, limit: int) -> tuple[list[Mismatch], int]:
    """The first ``limit`` places where ``value`` breaks ``schema``, by path, and how many there
    are in all; ``([], 0)`` when it fits."""
    compiled = validator(schema)
    if compiled.is_valid(value):
        return [], 0
    found = [Mismatch(tuple(e.instance_path), e.message) for e in compiled.iter_errors(value)]
    found.sort(key=lambda m: [str(p) for p in m.path])
    return found[:limit], len(found)


def _plain(value: Any) -> Any:
    """A read-only mapping as JSON text takes it (tuples are lists already)."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"a schema holds {type(value).__name__}, which is not JSON")


__all__ = ["CACHED", "Mismatch", "UncompilableSchema", "mismatches", "validator"]
