"""Token buckets keyed by a string (an email, a client address), clock passed in.

In memory, so each hub instance counts on its own: with N instances behind a
load balancer a client would get up to N times the budget. The service therefore
asks its store for limiters (``RateLimiter``): the SQLite store (one process) hands
out these, the PostgreSQL store budgets shared by every instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    def __init__(self, capacity: int, per_seconds: float, *, max_keys: int = 100_000) -> None:
        self.capacity = capacity
        self.rate = capacity / per_seconds
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, now: float) -> bool:
        """Spend one token for ``key``; False when its budget is used up."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(float(self.capacity), now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled is indistinguishable from a new one: drop those first.
        refill = self.capacity / self.rate
        for key in [k for k, b in self._buckets.items() if now - b.updated >= refill]:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:
            self._buckets.clear()


class RateLimiter(Protocol):
    """A named budget per key, as the service uses it; a store provides it (``HubStore.rate_limiter``)."""

    async def take(self, key: str, now: float) -> bool:
        """Spend one token for ``key``; False when its budget is used up."""
        ...


class LocalRateLimiter:
    """``TokenBuckets`` of this process: right where one process serves (the SQLite store)."""

    def __init__(self, capacity: int, per_seconds: float) -> None:
        self._buckets = TokenBuckets(capacity, per_seconds)

    async def take(self, key: str, now: float) -> bool:
        return self._buckets.take(key, now)
