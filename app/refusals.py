"""401 and 429 refusals: counted in memory and logged at a bounded rate, never a row each.

A client without a valid token, or over its rate, can send as fast as it likes;
writing a ``rejections`` row for each (a transaction, more work than accepting an
event) would let it load the database for free. :class:`Refusals` counts them per
(status, token name, client address) instead, in a bounded table, and logs at
most one line per key every ``log_every`` seconds with the count since the last
line. Other refusals (400, 403, 409, 413, 415, 422) come from a client that
authenticated and is within its rate: they are still audited one row each.

One :class:`Refusals` lives in the API's state; a metrics exporter can read
:meth:`Refusals.snapshot` (the counts are totals since the process started).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from app.logs import log_event
from app.metrics import count_refusal

#: the statuses counted here rather than audited
COUNTED = frozenset({401, 429})
#: the key every refusal is counted under once the table is full
OTHERS = "*"


@dataclass(frozen=True)
class RefusalKey:
    """Who was refused, and how: the status, the token's name (none for a 401), the address."""

    status: int
    token_name: str | None
    client_addr: str | None


@dataclass(frozen=True)
class RefusalCounts:
    """A copy of the counts: totals per status, and per key (``OTHERS`` past the table's size)."""

    totals: dict[int, int]
    by_key: dict[RefusalKey, int]


class Refusals:
    """Counts of 401 and 429 refusals, with at most one log line per key per ``log_every``."""

    def __init__(
        self,
        *,
        max_keys: int = 10_000,
        log_every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_keys = max_keys
        self.log_every = log_every
        self._clock = clock
        self._lock = threading.Lock()
        self._totals: dict[int, int] = {}
        self._counts: dict[RefusalKey, int] = {}
        #: key -> (when its last line was logged, its count then)
        self._logged: dict[RefusalKey, tuple[float, int]] = {}

    def count(self, status: int, token_name: str | None, client_addr: str | None) -> None:
        """Count one refusal; log a line if this key has had none for ``log_every`` seconds."""
        key = RefusalKey(status, token_name[:100] if token_name else None, _address(client_addr))
        count_refusal(status, key.token_name)
        with self._lock:
            self._totals[status] = self._totals.get(status, 0) + 1
            if key not in self._counts and len(self._counts) >= self.max_keys:
                key = RefusalKey(status, OTHERS, OTHERS)  # a bounded table: the rest together
            total = self._counts.get(key, 0) + 1
            self._counts[key] = total
            now = self._clock()
            last = self._logged.get(key)
            if last is not None and now - last[0] < self.log_every:
                return
            self._logged[key] = (now, total)
            since = total - (last[1] if last else 0)
        log_event(
            "api.refused",
            level=logging.INFO if status == 401 else logging.WARNING,
            status=status,
            token_name=key.token_name,
            client_addr=key.client_addr,
            count=since,
            total=total,
            log_every_seconds=self.log_every,
        )

    def snapshot(self) -> RefusalCounts:
        """The counts so far (a copy, for a metrics exporter or a test)."""
        with self._lock:
            return RefusalCounts(dict(self._totals), dict(self._counts))


def _address(client_addr: str | None) -> str | None:
    return client_addr[:64] if client_addr else None
