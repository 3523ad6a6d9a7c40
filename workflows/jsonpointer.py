"""JSON pointers (RFC 6901): ``/items/0/price`` from a path, and a pointer's tokens back.

A path is a sequence of mapping keys and list indexes. In a pointer each one is
prefixed with ``/``, with ``~`` written ``~0`` and ``/`` written ``~1``, so that a
key such as ``a/b`` stays one token. The whole document is the empty pointer ``""``.
"""

from __future__ import annotations

from collections.abc import Iterable


def pointer(path: Iterable[str | int]) -> str:
    """The pointer of ``path``: ``("items", 0, "a/b")`` is ``/items/0/a~1b``, ``()`` is ``""``."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def unescape(token: str) -> str:
    """One pointer token as the key it stands for: ``a~1b`` is ``a/b``, ``c~0d`` is ``c~d``."""
    return token.replace("~1", "/").replace("~0", "~")
