"""Deterministic JSON instances built from a JSON Schema, for the mock provider.

The same schema and seed always give the same value; another seed gives other
strings and numbers. What is honoured: ``$ref`` (local), ``const``, ``enum``,
``allOf``/``anyOf``/``oneOf``, ``type`` (or a type inferred from the keywords),
string ``format``s (email, date-time, date, time, uri, uuid, hostname, ipv4,
ipv6), ``minLength``/``maxLength``, ``minimum``/``maximum`` and their exclusive
forms, ``multipleOf``, ``minItems``/``maxItems``, ``prefixItems``/``items``,
``properties``, ``required`` and ``additionalProperties``. A ``pattern`` is not
generated for; the caller validates the result and reports what does not fit.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from datetime import UTC, datetime, timedelta

from workflows.jsonpointer import unescape
from workflows.model import JSON

_MAX_DEPTH = 6
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def sample(schema: JSON, seed: str) -> JSON:
    """A value that satisfies ``schema`` (as far as the keywords above go), fixed by ``seed``."""
    return _Sampler(schema, seed).value(schema, "#", 0)


class _Sampler:
    """Walks a schema; every choice is a hash of the seed and the JSON path being built."""

    def __init__(self, root: JSON, seed: str) -> None:
        self.root = root
        self.seed = seed

    def number(self, path: str) -> int:
        """A stable pseudo-random non-negative integer for ``path``."""
        digest = hashlib.sha256(f"{self.seed}|{path}".encode()).digest()
        return int.from_bytes(digest[:8], "big")

    def value(self, schema: JSON, path: str, depth: int) -> JSON:
        """The instance for ``schema`` at ``path``."""
        if schema is True or schema == {}:
            return f"mock-{self.number(path) % 10_000}"
        if not isinstance(schema, dict):
            return None
        if "$ref" in schema:
            return self.value(self.resolve(schema["$ref"]), path, depth + 1)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            options = schema["enum"]
            return options[self.number(path) % len(options)]
        if "allOf" in schema:
            return self.value(_merge(schema), path, depth)
        for key in ("oneOf", "anyOf"):
            if schema.get(key):
                options = [o for o in schema[key] if not _is_null(o)] or schema[key]
                chosen = options[0] if isinstance(options[0], dict) else {}
                return self.value({**_without(schema, key), **chosen}, path, depth)
        kind = _kind(schema)
        build = getattr(self, f"_{kind}", self._string)
        result: JSON = build(schema, path, depth)
        return result

    def resolve(self, ref: str) -> JSON:
        """A local ``#/...`` reference inside the root schema; ``{}`` for anything else."""
        if not ref.startswith("#"):
            return {}
        node = self.root
        for raw in filter(None, ref[1:].split("/")):
            part = unescape(raw)
            if isinstance(node, dict):
                node = node.get(part, {})
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return {}
        return node

    def _null(self, schema: dict[str, JSON], path: str, depth: int) -> JSON:
        return None

    def _boolean(self, schema: dict[str, JSON], path: str, depth: int) -> JSON:
        return self.number(path) % 2 == 0

    def _integer(self, schema: dict[str, JSON], path: str, depth: int) -> JSON:
        low, high = _bounds(schema, step=1)
        low, high = math.ceil(low), math.floor(high)
        step = schema.get("multipleOf")
        if isinstance(step, int) and step > 0:
            first = math.ceil(low / step) * step
            count = max((high - first) // step + 1, 1)
            return int(first + (self.number(path) % count) * step)
        return int(low + self.number(path) % max(high - low + 1, 1))

    def _number(self, schema: dict[str, JSON], path: str, depth: int) -> JSON:
        step = schema.get("multipleOf")
        if isinstance(step, int):
            return self._integer(schema, path, depth)
        low, high = _bounds(schema, step=0.01)
        if isinstance(step, float) and step > 0:
            return _multiple(step, low, high, self.number(path))
        fraction = (self.number(path) % 10_000) / 10_000
        value = round(low + (high - low) * fraction, 2)
        return min(max(value, low), high)

    def _string(self, schema: dict[str, JSON], path: str, depth: int) -> JSON:
        n = self.number(path)
        name = next((p for p in reversed(path.split("/")) if p and not p.isdigit()), "#")
        name = "value" if name == "#" else name
        text = _formatted(str(schema.get("format", "")), name, n)
        minimum, maximum = schema.get("minLength", 0), schema.get("maxLength")
        if len(text) < minimum:
            text += "x" * (minimum - len(text))
        if isinstance(maximum, int) and len(text) > maximum:
            text = text[:maximum]
        return text

    def _array(self, schema: dict[str, JSON], path: str, depth: int) -> JSON:
        prefix = schema.get("prefixItems", [])
        count = max(int(schema.get("minItems", 0)), len(prefix))
        if depth < _MAX_DEPTH:
            count = max(count, 1)
        maximum = schema.get("maxItems")
        if isinstance(maximum, int):
            count = min(count, maximum)
        items = schema.get("items", {})
        return [
            self.value(prefix[i] if i < len(prefix) else items, f"{path}/{i}", depth + 1)
            for i in range(count)
        ]

    def _object(self, schema: dict[str, JSON], path: str, depth: int) -> JSON:
        properties: dict[str, JSON] = schema.get("properties", {})
        required: list[str] = list(schema.get("required", []))
        names = list(properties) if depth < _MAX_DEPTH else []
        names += [r for r in required if r not in names]
        extra = schema.get("additionalProperties", {})
        return {
            name: self.value(properties.get(name, extra), f"{path}/{name}", depth + 1)
            for name in names
        }


def _kind(schema: dict[str, JSON]) -> str:
    """The JSON type to build: the declared one (first non-null) or one the keywords imply."""
    declared = schema.get("type")
    if isinstance(declared, list):
        declared = next((t for t in declared if t != "null"), declared[0] if declared else None)
    if isinstance(declared, str):
        return declared
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
        return "number"
    return "string"


def _bounds(schema: dict[str, JSON], step: float) -> tuple[float, float]:
    """The inclusive range allowed by the numeric keywords (a small one when open)."""
    low = schema.get("minimum")
    if isinstance(schema.get("exclusiveMinimum"), int | float):
        low = max(low if low is not None else -math.inf, schema["exclusiveMinimum"] + step)
    high = schema.get("maximum")
    if isinstance(schema.get("exclusiveMaximum"), int | float):
        high = min(high if high is not None else math.inf, schema["exclusiveMaximum"] - step)
    if low is None:
        low = 0 if high is None or high >= 0 else high - 100
    if high is None:
        high = low + 100
    return float(low), float(max(high, low))


def _multiple(step: float, low: float, high: float, n: int) -> float:
    """A multiple of ``step`` in ``[low, high]`` that survives float division by ``step``."""
    first, last = math.ceil(low / step), math.floor(high / step)
    start = first + n % max(last - first + 1, 1)
    for k in [*range(start, last + 1), *range(first, start)][:100]:
        value: float = round(k * step, 12)
        if (value / step).is_integer():
            return value
    return round(first * step, 12)


def _formatted(fmt: str, name: str, n: int) -> str:
    """A string in ``fmt``; a ``<name>-<hex>`` token when the format is not one we know."""
    moment = _EPOCH + timedelta(seconds=n % (3 * 365 * 86_400))
    match fmt:
        case "email" | "idn-email":
            return f"{name.lower()}{n % 10_000}@example.com"
        case "date-time":
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        case "date":
            return moment.strftime("%Y-%m-%d")
        case "time":
            return moment.strftime("%H:%M:%SZ")
        case "uri" | "url" | "iri" | "uri-reference":
            return f"https://example.com/{name}/{n % 10_000}"
        case "uuid":
            return str(uuid.UUID(int=n << 64 | n, version=4))
        case "hostname" | "idn-hostname":
            return f"host{n % 10_000}.example.com"
        case "ipv4":
            return f"192.0.2.{n % 254 + 1}"
        case "ipv6":
            return f"2001:db8::{n % 65_535:x}"
        case _:
            return f"{name}-{n % 16**8:08x}"


def _merge(schema: dict[str, JSON]) -> dict[str, JSON]:
    """``allOf`` folded into one schema: properties merged, required lists joined."""
    merged: dict[str, JSON] = _without(schema, "allOf")
    for part in schema["allOf"]:
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties":
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required":
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def _without(schema: dict[str, JSON], key: str) -> dict[str, JSON]:
    return {k: v for k, v in schema.items() if k != key}


def _is_null(schema: JSON) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null"
