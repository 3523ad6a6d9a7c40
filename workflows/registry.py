"""The trigger registry: which workflows an event name starts, and payload validation.

Built once per loaded project: every trigger schema is compiled into a
``jsonschema_rs`` validator (:mod:`workflows.payload_schema`: Draft 2020-12,
``format`` asserted), so validating a payload on the hot path only runs compiled
Rust code. Errors are only collected, and explained, for a payload a subscriber
refuses, and then at most ``max_errors`` per workflow from a bounded sample of the
payload (:mod:`workflows.payload_sample`), so that a payload with 90,000 errors
costs what one with a hundred does. :class:`Definitions` bundles a project with
its registry; the API and the workers hold one and swap it whole on reload.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from jsonschema_rs import ValidationError, ValidationErrorKind, Validator

from workflows.errors import DefinitionError, Problem
from workflows.expressions import ExpressionFailed
from workflows.jsonpointer import pointer
from workflows.loading.loader import load_project
from workflows.loading.yamlsource import format_path
from workflows.model import Project, Trigger, Workflow
from workflows.payload_sample import has_conditionals, take
from workflows.payload_schema import UncompilableSchema, compile_payload_schema
from workflows.routing import Match, PatternIndex, is_pattern

#: errors listed per refusing workflow unless told otherwise (``HERALD_MAX_ERRORS``)
MAX_ERRORS = 20
_MAX_MESSAGE = 200
#: the longest path or message an error carries (a key may be as long as the body)
_MAX_TEXT = 300
#: JSON types as a message names them, in the order a message lists them
_JSON_TYPES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
}
_ORDER = list(_JSON_TYPES)
_Path = list[str | int]


@dataclass(frozen=True)
class Subscription:
    """One workflow's trigger on an event name."""

    workflow: Workflow
    trigger: Trigger


@dataclass(frozen=True)
class PayloadError:
    """Why a payload does not satisfy a subscribed workflow's trigger schema."""

    workflow_id: str
    #: JSON pointer into the payload (``""`` for the root, ``/items/0/quantity``);
    #: a missing required property is pointed at (``/customerId``)
    path: str
    #: a readable message naming the field
    message: str


@dataclass(frozen=True)
class Refusal:
    """Why one subscribed workflow refuses a payload: its first errors and how many more."""

    workflow_id: str
    #: at most ``max_errors`` errors
    errors: tuple[PayloadError, ...]
    #: further errors found and not listed
    more: int
    #: ``more`` counts every further error; when False the payload was too large to look at
    #: whole, and ``more`` is a lower bound
    exact: bool
    #: errors the validator built to explain this refusal (the work done, bounded)
    examined: int


@dataclass(frozen=True)
class Filtered:
    """A subscribed workflow whose trigger ``filter`` turned the event away."""

    workflow_id: str
    trigger: str
    reason: str


@dataclass(frozen=True)
class _Compiled:
    workflow_id: str
    validator: Validator
    #: the schema applies subschemas depending on values elsewhere (if/then/else...)
    conditional: bool = False


class TriggerRegistry:
    """Event name -> every (workflow, trigger) subscribed, with compiled payload validators.

    A trigger name may hold wildcards (:mod:`workflows.routing`): exact names are a
    dict lookup, patterns a walk of a segment trie, and the merged answer for a name
    is cached, so routing never scans the triggers.
    """

    def __init__(
        self,
        subscriptions: Mapping[str, tuple[Subscription, ...]],
        validators: Mapping[str, tuple[_Compiled, ...]],
        patterns: PatternIndex[tuple[Subscription, _Compiled | None]] | None = None,
        awaited: frozenset[str] = frozenset(),
    ) -> None:
        self._subscriptions = subscriptions
        self._validators = validators
        self._patterns: PatternIndex[tuple[Subscription, _Compiled | None]] = (
            patterns or PatternIndex()
        )
        self._names = tuple(sorted(subscriptions))
        self._routes: dict[str, _Route] = {}
        self._awaited = awaited

    @classmethod
    def build(cls, project: Project) -> TriggerRegistry:
        """Index every trigger of ``project`` and compile one validator per trigger schema.

        The loader has compiled each schema already: a DefinitionError here means a
        project that did not come from :func:`~workflows.loading.loader.load_project`.
        """
        by_name: dict[str, list[Subscription]] = {}
        patterns: PatternIndex[tuple[Subscription, _Compiled | None]] = PatternIndex()
        for workflow in sorted(project.workflows.values(), key=lambda w: w.id):
            for trigger in workflow.triggers:
                subscription = Subscription(workflow, trigger)
                if is_pattern(trigger.name):
                    patterns.add(trigger.name, (subscription, _compiled(subscription)))
                else:
                    by_name.setdefault(trigger.name, []).append(subscription)
        validators = {
            name: tuple(c for s in subs if (c := _compiled(s)) is not None)
            for name, subs in by_name.items()
        }
        subscriptions = {name: tuple(subs) for name, subs in by_name.items()}
        awaited = frozenset(
            task.wait.event
            for workflow in project.workflows.values()
            for task in workflow.tasks
            if task.wait is not None
        )
        return cls(MappingProxyType(subscriptions), MappingProxyType(validators), patterns, awaited)

    def awaited(self, name: str) -> bool:
        """Whether some ``wait`` task of the project waits for events named ``name``."""
        return name in self._awaited

    def subscribers(
        self, name: str, payload: object = None, *, filtered: list[Filtered] | None = None
    ) -> tuple[Subscription, ...]:
        """The subscriptions whose trigger matches ``name``, by workflow id; ``()`` when none.

        With ``payload``, those whose trigger ``filter`` turns it away are left out
        (and appended to ``filtered`` with the reason, when given).
        """
        route = self._route(name)
        if payload is None or not route.filters:
            return route.subscriptions
        kept: list[Subscription] = []
        for subscription in route.subscriptions:
            reason = _turned_away(subscription, name, payload)
            if reason is None:
                kept.append(subscription)
            elif filtered is not None:
                trigger = subscription.trigger.name
                filtered.append(Filtered(subscription.workflow.id, trigger, reason))
        return tuple(kept)

    def match(self, name: str) -> Match[tuple[Subscription, _Compiled | None]]:
        """The wildcard triggers ``name`` matches, and the trie nodes looked at (uncached)."""
        return self._patterns.match(name)

    def _route(self, name: str) -> _Route:
        route = self._routes.get(name)
        if route is not None:
            return route
        exact = self._subscriptions.get(name, ())
        if not self._patterns.size:
            route = _Route(exact, self._validators.get(name, ()))
        else:
            matched = self._patterns.match(name).values
            both: list[tuple[Subscription, _Compiled | None]] = [(s, None) for s in exact]
            both.extend(matched)
            both.sort(key=lambda pair: (pair[0].workflow.id, pair[0].trigger.index))
            compiled = [c for _, c in matched if c is not None]
            route = _Route(tuple(s for s, _ in both), (*self._validators.get(name, ()), *compiled))
        if len(self._routes) >= _ROUTE_CACHE:
            self._routes.clear()  # names come from clients: keep the cache bounded
        self._routes[name] = route
        return route

    def validate(
        self, name: str, payload: object, *, max_errors: int = MAX_ERRORS
    ) -> list[PayloadError]:
        """The errors of ``payload`` against every subscriber's schema, at most ``max_errors``
        per workflow; ``[]`` when valid."""
        return [e for r in self.refusals(name, payload, max_errors=max_errors) for e in r.errors]

    def refusals(
        self, name: str, payload: object, *, max_errors: int = MAX_ERRORS
    ) -> list[Refusal]:
        """One :class:`Refusal` per subscribed trigger whose schema ``payload`` breaks.

        A workflow whose trigger ``filter`` turns the event away is not asked.
        """
        route = self._route(name)
        compiled = route.validators
        if not compiled:
            return []
        if route.filters:
            wanted = {s.workflow.id for s in self.subscribers(name, payload)}
            compiled = tuple(entry for entry in compiled if entry.workflow_id in wanted)
        return [
            _refusal(entry, payload, max_errors)
            for entry in compiled
            if not entry.validator.is_valid(payload)
        ]

    def names(self) -> tuple[str, ...]:
        """Every exact event name some workflow subscribes to, sorted (wildcards aside)."""
        return self._names


@dataclass(frozen=True)
class _Route:
    """Everything subscribed to one event name: exact triggers and matching patterns."""

    subscriptions: tuple[Subscription, ...]
    validators: tuple[_Compiled, ...]
    #: some subscribed trigger has a ``filter`` (else nothing is evaluated per event)
    filters: bool = False

    def __post_init__(self) -> None:
        filters = any(s.trigger.filter is not None for s in self.subscriptions)
        object.__setattr__(self, "filters", filters)


#: event names whose routes are cached (cleared whole when full)
_ROUTE_CACHE = 10_000


def _turned_away(subscription: Subscription, name: str, payload: object) -> str | None:
    """Why ``subscription``'s filter turns the event away, or None when it lets it through."""
    condition = subscription.trigger.filter
    if condition is None:
        return None
    try:
        value = condition.evaluate({"input": payload, "event": {"name": name, "payload": payload}})
    except ExpressionFailed as exc:
        return f"filter could not be evaluated: {exc.message}"
    if value is True:
        return None
    return f"filter {condition.source!r} is {json.dumps(value, default=str)} for this event"


def _compiled(subscription: Subscription) -> _Compiled | None:
    """The compiled schema of a subscription's trigger; ``None`` without a schema."""
    schema = subscription.trigger.schema
    if schema is None:
        return None
    return _Compiled(subscription.workflow.id, _compile(subscription), has_conditionals(schema))


def _refusal(entry: _Compiled, payload: object, max_errors: int) -> Refusal:
    """Explain a refused payload from a bounded sample of it (see :mod:`workflows.payload_sample`).

    The sample keeps the first members of every object and array, a few times
    ``max_errors`` values in all: what the validator builds is bounded by the
    sample, not by the payload. If nothing the sample shows is sure to hold for
    the whole payload, the payload's first error is shown (the validator stops at it).
    """
    per_container = max(max_errors, 50)
    sample = take(payload, per_container=per_container, budget=4 * per_container)
    listed: list[PayloadError] = []
    found = examined = 0
    for error in entry.validator.iter_errors(sample.value):
        examined += 1
        if not sample.holds(error, conditional=entry.conditional):
            continue
        for shown in _payload_errors(entry.workflow_id, error):
            found += 1
            if len(listed) < max_errors:
                listed.append(_bounded(shown))
    if found:
        return Refusal(
            entry.workflow_id, tuple(listed), found - len(listed), not sample.cut, examined
        )
    try:
        entry.validator.validate(payload)
    except ValidationError as error:
        examined += 1
        for shown in _payload_errors(entry.workflow_id, error):
            found += 1
            if len(listed) < max_errors:
                listed.append(_bounded(shown))
    return Refusal(entry.workflow_id, tuple(listed), found - len(listed), False, examined)


def _bounded(error: PayloadError) -> PayloadError:
    """``error`` with its path and message cut to :data:`_MAX_TEXT` characters."""
    if len(error.path) <= _MAX_TEXT and len(error.message) <= _MAX_TEXT:
        return error
    return PayloadError(error.workflow_id, _cut(error.path), _cut(error.message))


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def _compile(subscription: Subscription) -> Validator:
    trigger = subscription.trigger
    try:
        return compile_payload_schema(trigger.schema or {})
    except UncompilableSchema as exc:
        where = trigger.location
        path = format_path(("triggers", trigger.index, "schema", *exc.path))
        problem = Problem(
            where.file if where else subscription.workflow.id,
            where.line if where else 0,
            path,
            f"invalid JSON Schema for payloads: {exc.message}",
        )
        raise DefinitionError([problem]) from None


def _payload_errors(workflow_id: str, error: ValidationError) -> Iterator[PayloadError]:
    """One error as the API shows it: a JSON pointer and a short message naming the field."""
    path: _Path = list(error.instance_path)
    kind = error.kind
    if isinstance(kind, ValidationErrorKind.AnyOf | ValidationErrorKind.OneOfNotValid):
        # "is not valid under any of the schemas" says little: say what the closest branch wants
        types = _branch_types(path, kind.context)
        best = _best_match(path, kind.context)
        if types is not None:
            yield PayloadError(workflow_id, pointer(path), _type_message(path, types, error))
        elif best is not None:
            yield from _payload_errors(workflow_id, best)
        else:
            yield _generic(workflow_id, path, error)
    elif isinstance(kind, ValidationErrorKind.Required):
        where = [*path, kind.property]
        message = f"{_field(where)}: required field is missing"
        yield PayloadError(workflow_id, pointer(where), message)
    elif isinstance(
        kind, ValidationErrorKind.AdditionalProperties | ValidationErrorKind.UnevaluatedProperties
    ):
        for key in kind.unexpected:
            where = [*path, key]
            yield PayloadError(workflow_id, pointer(where), f"{_field(where)}: unexpected field")
    elif isinstance(kind, ValidationErrorKind.Type):
        yield PayloadError(workflow_id, pointer(path), _type_message(path, kind.types, error))
    else:
        yield _generic(workflow_id, path, error)


def _generic(workflow_id: str, path: _Path, error: ValidationError) -> PayloadError:
    """jsonschema_rs's own message, after the field's name, cut when long."""
    message = error.message
    if len(message) > _MAX_MESSAGE:  # messages quote the value, which may be large
        message = message[: _MAX_MESSAGE - 3] + "..."
    return PayloadError(workflow_id, pointer(path), f"{_field(path)}: {message}")


def _type_message(path: _Path, types: Sequence[str], error: ValidationError) -> str:
    wanted = " or ".join(_JSON_TYPES.get(t, t) for t in sorted(set(types), key=_type_rank))
    return f"{_field(path)}: must be {wanted}, not {_json_type(error.instance)}"


def _type_rank(name: str) -> int:
    return _ORDER.index(name) if name in _ORDER else len(_ORDER)


def _branch_types(path: _Path, branches: list[list[ValidationError]]) -> list[str] | None:
    """The types the branches accept, when the value has none of them (one message then)."""
    types: list[str] = []
    for branch in branches:
        found = [t for e in branch for t in _types_wanted_at(e, path)]
        if not found:
            return None
        types.extend(found)
    return types


def _best_match(path: _Path, branches: list[list[ValidationError]]) -> ValidationError | None:
    """The error of the branch the value came closest to; ``None`` without any.

    A branch whose type the value has beats one it has not; then the error highest
    in the payload (the most is wrong there: a missing field rather than a field of
    the wrong type inside); then the first.
    """
    candidates = [
        (not any(_is_type_error_at(e, path) for e in branch), error)
        for branch in branches
        for error in branch
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda c: (c[0], -len(c[1].instance_path)))[1]


def _is_type_error_at(error: ValidationError, path: _Path) -> bool:
    return bool(_types_wanted_at(error, path))


def _types_wanted_at(error: ValidationError, path: _Path) -> list[str]:
    """The types a type error at ``path`` wants; ``[]`` for any other error."""
    kind = error.kind
    if isinstance(kind, ValidationErrorKind.Type) and list(error.instance_path) == path:
        return list(kind.types)
    return []


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    for kind, name in ((dict, "object"), (list, "array"), (str, "string"), (int, "integer")):
        if isinstance(value, kind):
            return _JSON_TYPES[name]
    return "a number" if isinstance(value, float) else "null"


def _field(path: _Path) -> str:
    """A readable field name: ``items[0].quantity``; ``payload`` for the root."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "payload"


@dataclass(frozen=True)
class Definitions:
    """A loaded project and its trigger registry; what the API and the workers hold."""

    project: Project
    registry: TriggerRegistry

    @classmethod
    def load(cls, root: Path) -> Definitions:
        """Load the project at ``root`` (DefinitionError if invalid) and build its registry."""
        project = load_project(root)
        return cls(project, TriggerRegistry.build(project))
