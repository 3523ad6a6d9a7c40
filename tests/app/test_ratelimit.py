"""The per-token token bucket, on a fake clock."""

from __future__ import annotations

import pytest

from app.errors import RateLimited
from app.ratelimit import RateLimiter


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_the_rate_then_refuses_with_retry_after() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2, clock=clock)

    limiter.check("a")
    limiter.check("a")
    with pytest.raises(RateLimited) as caught:
        limiter.check("a")
    assert caught.value.headers() == {"Retry-After": "1"}
    limiter.check("b")  # per key

    clock.now += 0.5  # one request's worth refilled
    limiter.check("a")
    with pytest.raises(RateLimited):
        limiter.check("a")


def test_slow_rate_says_how_long_to_wait() -> None:
    limiter = RateLimiter(rate=0.2, clock=Clock())
    limiter.check("a")
    with pytest.raises(RateLimited) as caught:
        limiter.check("a")
    assert caught.value.retry_after == 5


def test_zero_rate_is_off() -> None:
    limiter = RateLimiter(rate=0)
    for _ in range(1000):
        limiter.check("a")
    assert not limiter.enabled
