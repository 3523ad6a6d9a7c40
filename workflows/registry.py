"""The trigger registry: which workflows an event name starts, and payload validation.

Built once per loaded project: every trigger schema is compiled into a
``Draft202012Validator`` with a format checker that asserts ``format``
(email, date-time, uri, uuid...), so validating a payload on the hot path only
runs the validators. :class:`Definitions` bundles a project with its registry;
the API and the workers hold one and swap it whole on reload.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match

from workflows.loader import load_project
from workflows.model import Project, Trigger, Workflow

_MAX_MESSAGE = 200
_JSON_TYPES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
}
# local@domain with a dotted domain, no spaces; stricter than jsonschema's "contains an @"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")


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


@cache
def format_checker() -> FormatChecker:
    """Every format jsonschema can check with the installed packages, email made strict."""
    checker = FormatChecker(formats=())
    # the Draft 2020-12 functions: FormatChecker's class-wide table mixes in older drafts' ones
    # under the same names (draft 3's "time" is a different check)
    checker.checkers.update(Draft202012Validator.FORMAT_CHECKER.checkers)
    checker.checks("email")(_is_email)
    checker.checks("idn-email")(_is_email)
    return checker


def _is_email(instance: object) -> bool:
    return not isinstance(instance, str) or _EMAIL.match(instance) is not None


@dataclass(frozen=True)
class _Compiled:
    workflow_id: str
    validator: Draft202012Validator


class TriggerRegistry:
    """Event name -> every (workflow, trigger) subscribed, with compiled payload validators."""

    def __init__(
        self,
        subscriptions: Mapping[str, tuple[Subscription, ...]],
        validators: Mapping[str, tuple[_Compiled, ...]],
    ) -> None:
        self._subscriptions = subscriptions
        self._validators = validators
        self._names = tuple(sorted(subscriptions))

    @classmethod
    def build(cls, project: Project) -> TriggerRegistry:
        """Index every trigger of ``project`` and compile one validator per trigger schema."""
        by_name: dict[str, list[Subscription]] = {}
        for workflow in sorted(project.workflows.values(), key=lambda w: w.id):
            for trigger in workflow.triggers:
                by_name.setdefault(trigger.name, []).append(Subscription(workflow, trigger))
        checker = format_checker()
        validators = {
            name: tuple(
                _Compiled(
                    s.workflow.id,
                    Draft202012Validator(dict(s.trigger.schema), format_checker=checker),
                )
                for s in subs
                if s.trigger.schema is not None
            )
            for name, subs in by_name.items()
        }
        subscriptions = {name: tuple(subs) for name, subs in by_name.items()}
        return cls(MappingProxyType(subscriptions), MappingProxyType(validators))

    def subscribers(self, name: str) -> tuple[Subscription, ...]:
        """The subscriptions to ``name``, by workflow id; ``()`` when none."""
        return self._subscriptions.get(name, ())

    def validate(self, name: str, payload: object) -> list[PayloadError]:
        """Every error of ``payload`` against every subscriber's schema; ``[]`` when valid."""
        compiled = self._validators.get(name)
        if not compiled:
            return []
        errors: list[PayloadError] = []
        for entry in compiled:
            for error in entry.validator.iter_errors(payload):
                errors.extend(_payload_errors(entry.workflow_id, error))
        return errors

    def names(self) -> tuple[str, ...]:
        """Every event name some workflow subscribes to, sorted."""
        return self._names


def _payload_errors(workflow_id: str, error: ValidationError) -> Iterator[PayloadError]:
    """One error as the API shows it: a JSON pointer and a short message naming the field."""
    path: list[str | int] = list(error.absolute_path)
    kind = error.validator
    if kind in ("anyOf", "oneOf") and error.context:
        # "is not valid under any of the given schemas" says little: show jsonschema's best match
        yield from _payload_errors(workflow_id, best_match(error.context))
    elif kind == "required" and isinstance(error.instance, dict):
        # jsonschema reports each missing key in its own error, starting with the key's repr
        for key in error.validator_value:
            if key not in error.instance and error.message.startswith(repr(key)):
                where = [*path, key]
                yield PayloadError(
                    workflow_id, _pointer(where), f"{_field(where)}: required field is missing"
                )
    elif kind == "additionalProperties" and isinstance(error.instance, dict):
        for key in _unexpected(error):
            where = [*path, key]
            yield PayloadError(workflow_id, _pointer(where), f"{_field(where)}: unexpected field")
    elif kind == "type":
        expected = error.validator_value
        names = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_JSON_TYPES.get(n, n) for n in names)
        message = f"{_field(path)}: must be {wanted}, not {_json_type(error.instance)}"
        yield PayloadError(workflow_id, _pointer(path), message)
    else:
        message = error.message
        if len(message) > _MAX_MESSAGE:  # messages quote the value, which may be large
            message = message[: _MAX_MESSAGE - 3] + "..."
        yield PayloadError(workflow_id, _pointer(path), f"{_field(path)}: {message}")


def _unexpected(error: ValidationError) -> list[str]:
    schema = error.schema if isinstance(error.schema, dict) else {}
    allowed = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    return [
        key
        for key in error.instance
        if key not in allowed and not any(re.search(p, key) for p in patterns)
    ]


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    for kind, name in ((dict, "object"), (list, "array"), (str, "string"), (int, "integer")):
        if isinstance(value, kind):
            return _JSON_TYPES[name]
    return "a number" if isinstance(value, float) else "null"


def _pointer(path: list[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _field(path: list[str | int]) -> str:
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
