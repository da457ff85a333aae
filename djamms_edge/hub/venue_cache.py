"""Per-venue settings a paid request reads (price, rules), kept briefly in memory.

A paid request read its venue's price and rules from the store before its transaction: two trips to a
reader thread, a third of its time here (bench/hub_load.py). They change when staff change them, rarely.
A value read is kept ``TTL_S`` and dropped at once when the venue's rules or price change (the store's
``on_rules_change``: at once for a change made here, at PostgreSQL's notification for one made on another
instance; all of them when notifications may have been lost). A change that announces nothing here (the
``djamms-hub`` CLI writing the SQLite file) is seen within ``TTL_S``, as token revocations are
(hub/credentials.py). The rules were read outside the request's transaction before this cache too; the
transaction itself (replay, per-artist count, insert) reads the store.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from djamms_edge.hub.store.base import HubStore

T = TypeVar("T")
TTL_S = 1.0
MAX_VENUES = 10_000  # beyond, the cache starts afresh


class VenueCache(Generic[T]):
    def __init__(self, store: HubStore, load: Callable[[str], Awaitable[T | None]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._load = load
        self._clock = clock
        self._values: dict[str, tuple[T, float]] = {}
        self._generation = 0  # a read in flight across an invalidation is not kept
        store.on_rules_change(self.invalidate)

    async def get(self, venue_id: str) -> T | None:
        """The venue's value (None, never kept: no such venue)."""
        now = self._clock()
        hit = self._values.get(venue_id)
        if hit is not None and hit[1] > now:
            return hit[0]
        generation = self._generation
        value = await self._load(venue_id)
        if value is not None and generation == self._generation:
            if len(self._values) >= MAX_VENUES:
                self._values.clear()
            self._values[venue_id] = (value, now + TTL_S)
        return value

    def invalidate(self, venue_id: str | None) -> None:
        self._generation += 1
        if venue_id is None:
            self._values.clear()
        else:
            self._values.pop(venue_id, None)
