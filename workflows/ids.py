"""Sortable unique ids: a prefix, then 48 bits of milliseconds and 80 random bits.

Ids sort by creation time, so ``ORDER BY id`` is the order of arrival and a
cursor is just the last id seen.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def new_id(prefix: str) -> str:
    """A new id such as ``evt_01jd3k...`` (26 base32 characters after the prefix)."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return f"{prefix}_{''.join(reversed(chars))}"
