"""Which files of a project directory are workflow files.

The project's ``herald.yaml`` (or ``herald.yml``) is read apart. Workflow files are
the files below the project directory whose path, relative to it, matches one of
the ``workflows`` globs (default ``**/*.yaml`` and ``**/*.yml``), except files in
hidden directories, ``.venv``, ``venv``, ``node_modules`` and ``__pycache__``
(never walked into), and any file named ``herald.yaml``/``herald.yml``. Globs
know ``*`` (within one directory), ``**`` (any number of directories), ``?`` and
``[...]``. Files come back in sorted path order.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

PROJECT_FILES = ("herald.yaml", "herald.yml")
DEFAULT_GLOBS = ("**/*.yaml", "**/*.yml")
SKIPPED_DIRS = frozenset({".venv", "venv", "node_modules", "__pycache__"})


def glob_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be a workflows glob, or None when it can."""
    if not pattern.strip():
        return "a glob cannot be empty"
    if pattern.startswith("/") or ".." in pattern.split("/"):
        return f"glob {pattern!r} must be relative and stay inside the project directory"
    return None


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A regular expression matching the relative POSIX paths that ``pattern`` matches."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            out.append(("[^" if negate else "[") + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def discover(root: Path, globs: tuple[str, ...] = DEFAULT_GLOBS) -> list[Path]:
    """The workflow files below ``root`` matching ``globs``, in sorted path order."""
    matchers = [glob_regex(g) for g in globs if glob_problem(g) is None]
    found: list[tuple[str, Path]] = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not (d.startswith(".") or d in SKIPPED_DIRS)]
        base = Path(directory)
        rel_dir = base.relative_to(root).as_posix()
        for name in filenames:
            if name in PROJECT_FILES:
                continue
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if any(m.match(rel) for m in matchers):
                found.append((rel, base / name))
    return [path for _, path in sorted(found)]
