"""How a trigger's payload schema is compiled: ``jsonschema_rs``, Draft 2020-12, formats asserted.

The one place that decides how payloads are validated. The loader compiles every
trigger schema here to refuse, with its file and line, a schema that Python's
jsonschema accepts and ``jsonschema_rs`` cannot compile (a ``pattern`` in a regex
dialect it does not speak); the registry compiles the same way and keeps the
validators. ``format`` is asserted (email, date-time, uri, uuid...), with ``email``
made stricter: a local part, an ``@`` and a dotted domain, without spaces.
Nothing is fetched: a ``$ref`` must resolve inside the schema. A tool's or an
agent's input and output schemas compile the same way
(:func:`compile_step_schema`), in the draft their ``$schema`` names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jsonschema_rs

from workflows.errors import HeraldError

# local@domain with a dotted domain, no spaces; stricter than "contains an @"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")


class UncompilableSchema(HeraldError):
    """``jsonschema_rs`` cannot compile a schema; ``path`` points inside the schema."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def is_email(instance: object) -> bool:
    """Whether ``instance`` is an email herald accepts (anything but a string passes)."""
    return not isinstance(instance, str) or _EMAIL.match(instance) is not None


_FORMATS = {"email": is_email, "idn-email": is_email}


def compile_payload_schema(schema: Mapping[str, Any]) -> jsonschema_rs.Validator:
    """A validator of payloads against ``schema``; UncompilableSchema says why there is none."""
    try:
        return jsonschema_rs.Draft202012Validator(
            dict(schema), formats=_FORMATS, validate_formats=True, offline=True
        )
    except jsonschema_rs.ValidationError as exc:  # the schema, checked by jsonschema_rs itself
        raise UncompilableSchema(tuple(exc.instance_path), exc.message) from None
    except jsonschema_rs.ReferencingError as exc:
        raise UncompilableSchema((), exc.message) from None


def compile_step_schema(schema: dict[str, Any] | bool) -> jsonschema_rs.Validator:
    """A validator of a tool's or agent's input or output: as payloads, but in the draft the
    schema's ``$schema`` names (2020-12 by default); UncompilableSchema says why there is none.

    ``schema`` must be plain JSON (dicts and lists): thaw read-only mappings first.
    """
    try:
        return jsonschema_rs.validator_for(
            schema, formats=_FORMATS, validate_formats=True, offline=True
        )
    except jsonschema_rs.ValidationError as exc:
        raise UncompilableSchema(tuple(exc.instance_path), exc.message) from None
    except jsonschema_rs.ReferencingError as exc:
        raise UncompilableSchema((), exc.message) from None
