"""JSON pointers: RFC 6901 escaping both ways."""

from __future__ import annotations

from workflows.jsonpointer import pointer, unescape


def test_pointer_escapes_slashes_and_tildes() -> None:
    assert pointer(["a/b", "c~d", 0]) == "/a~1b/c~0d/0"
    assert pointer([]) == ""


def test_unescape_reverses_the_escaping_in_the_rfc_order() -> None:
    assert [unescape(token) for token in ("a~1b", "c~0d", "~01")] == ["a/b", "c~d", "~1"]
