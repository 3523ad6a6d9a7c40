"""A small in-process token bucket per API token (``HERALD_RATE_LIMIT`` requests/second).

Each process limits on its own: with N API processes a token may send N times
the rate. It protects the database from one runaway client, nothing more; put a
shared limit in the gateway when that matters.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from app.errors import RateLimited


class RateLimiter:
    """Allow ``rate`` requests per second per key, with bursts up to ``burst``."""

    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    @property
    def enabled(self) -> bool:
        """A rate of 0 (the default) means no limit."""
        return self.rate > 0

    def check(self, key: str) -> None:
        """Take one request from ``key``'s bucket, or raise :class:`RateLimited`."""
        if not self.enabled:
            return
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / self.rate)
                raise RateLimited(
                    f"rate limit of {self.rate:g} requests/second exceeded; retry in {wait}s",
                    retry_after=max(1, wait),
                    details={"limit_per_second": self.rate},
                )
            self._buckets[key] = (tokens - 1.0, now)
