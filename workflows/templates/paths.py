"""Go-style leading-dot paths (``.tasks.check-inventory.output``) translated for Jinja.

herald templates read their data with a leading dot, as Go templates do:
``{{ .input.orderId }}``, ``{{ .tasks.check-inventory.output.ok }}``. Jinja has no
such syntax, and a dash would parse as a minus, so before Jinja compiles a
template every path that starts with a dot inside ``{{ }}`` or ``{% %}`` is
rewritten into a call of the sandbox's lookup function::

    {{ .tasks.check-inventory.output.ok | default(false) }}
    {{ __herald_path(__herald_data, "tasks", "check-inventory", "output", "ok") | default(false) }}

Everything else stays Jinja: filters, tests, operators, literals, loops. The rules:

- a path starts at a ``.`` that does not follow a name, a number, a string or a
  closing bracket (so ``item.sku`` and ``1.5`` are left alone);
- a segment is a name, a dash joining two names (``check-inventory``: write a minus
  with spaces, ``.input.a - 1``), or a number indexing a list (``.input.items.0``);
- every segment is a key, never a Python attribute (``.input.items`` reads the key
  ``items``), so a path can never reach Python internals.

Only delimiters, string literals and raw blocks are scanned here; Jinja's own
parser does the rest and reports syntax errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workflows.errors import TemplateError

#: the sandbox global that resolves a path, and the render variable holding the data
LOOKUP_NAME = "__herald_path"
DATA_NAME = "__herald_data"

_SEGMENT = r"[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*"
_PATH = re.compile(rf"\.([A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*(?:\.{_SEGMENT})*)")
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", re.DOTALL)
_OPENING = re.compile(r"\{\{|\{%|\{#")
_RAW = re.compile(r"\{%[-+]?\s*raw\s*[-+]?%\}")
_END_RAW = re.compile(r"\{%[-+]?\s*endraw\s*[-+]?%\}")
#: characters after which a dot is an attribute access or a decimal point, not a path
_NOT_PATH_AFTER = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_)]}'\"")
_CLOSING = {"{{": "}}", "{%": "%}"}


def has_template(text: str) -> bool:
    """Whether ``text`` contains template syntax at all (cheap check for the hot path)."""
    return "{{" in text or "{%" in text


@dataclass(frozen=True)
class Translation:
    """A template rewritten for Jinja, with the paths it reads."""

    source: str
    paths: frozenset[tuple[str, ...]]


def translate(text: str) -> Translation:
    """Rewrite every leading-dot path in ``text``; ``TemplateError`` if a block is unclosed."""
    out: list[str] = []
    paths: set[tuple[str, ...]] = set()
    pos = 0
    while (opening := _OPENING.search(text, pos)) is not None:
        start = opening.start()
        out.append(text[pos:start])
        delimiter = opening.group()
        if delimiter == "{#":
            end = text.find("#}", start + 2)
            if end < 0:
                raise TemplateError("a comment opened with {# is never closed with #}")
            pos = end + 2
            out.append(text[start:pos])
            continue
        raw = _RAW.match(text, start)
        if raw is not None:
            end_raw = _END_RAW.search(text, raw.end())
            if end_raw is None:
                raise TemplateError("a {% raw %} block is never closed with {% endraw %}")
            pos = end_raw.end()
            out.append(text[start:pos])
            continue
        pos = _translate_block(text, start, _CLOSING[delimiter], out, paths)
    out.append(text[pos:])
    return Translation("".join(out), frozenset(paths))


def _translate_block(
    text: str, start: int, closing: str, out: list[str], paths: set[tuple[str, ...]]
) -> int:
    """Copy one ``{{ }}``/``{% %}`` block into ``out``, paths rewritten; the index after it."""
    out.append(text[start : start + 2])
    i = start + 2
    depth = 0
    while i < len(text):
        char = text[i]
        if char in "'\"":
            string = _STRING.match(text, i)
            if string is None:
                raise TemplateError(f"a string opened with {char} is never closed")
            out.append(string.group())
            i = string.end()
            continue
        if depth == 0 and text.startswith(closing, i):
            out.append(closing)
            return i + 2
        if char == "." and (i == 0 or text[i - 1] not in _NOT_PATH_AFTER):
            path = _PATH.match(text, i)
            if path is not None:
                segments = tuple(path.group(1).split("."))
                paths.add(segments)
                arguments = ", ".join(f'"{segment}"' for segment in segments)
                out.append(f"{LOOKUP_NAME}({DATA_NAME}, {arguments})")
                i = path.end()
                continue
        if char in "([{":
            depth += 1
        elif char in ")]}" and depth > 0:
            depth -= 1
        out.append(char)
        i += 1
    opening = text[start : start + 2]
    raise TemplateError(f"{opening} is never closed with {closing}")
