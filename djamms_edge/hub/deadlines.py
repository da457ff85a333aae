"""Many connection deadlines on one timer.

A hub under a slow-client attack holds thousands of connections, each with a deadline that is almost
always cancelled (a request head arrives) or all hit at once (an attacker's connections). One
``loop.call_later`` per connection costs a timer handle each and, when a crowd expires together, runs
thousands of callbacks in one turn of the loop. Here the deadlines sit in one heap swept by one timer at
most every ``tick_s``, and a sweep expires at most ``batch`` of them before it yields the loop to other
work (answering requests) and goes on.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable


class Deadline:
    """One pending deadline; ``expire`` runs when it passes unless it was cancelled first."""

    __slots__ = ("due", "expire")

    def __init__(self, due: float, expire: Callable[[], None]) -> None:
        self.due = due
        self.expire: Callable[[], None] | None = expire

    @property
    def pending(self) -> bool:
        return self.expire is not None


class Deadlines:
    """Deadlines in loop time (``loop.time()``), each expired within ``tick_s`` after it is due."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tick_s: float, batch: int = 16) -> None:
        self._loop = loop
        self._tick_s = tick_s
        self._batch = batch
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()  # ties never compare two Deadlines
        self._cancelled = 0  # entries still in the heap whose deadline was cancelled
        self._timer: asyncio.Handle | None = None
        self._timer_at = float("inf")
        self._closed = False

    def __len__(self) -> int:
        return len(self._heap) - self._cancelled

    def at(self, due: float, expire: Callable[[], None]) -> Deadline:
        deadline = Deadline(due, expire)
        if self._closed:
            deadline.expire = None
            return deadline
        heapq.heappush(self._heap, (due, next(self._order), deadline))
        now = self._loop.time()
        if max(due, now + self._tick_s) < self._timer_at:
            self._schedule(now)
        return deadline

    def cancel(self, deadline: Deadline | None) -> None:
        if deadline is None or deadline.expire is None:
            return
        deadline.expire = None
        self._cancelled += 1
        # Cancelled entries leave the heap when they come due; rebuild it rather than let them pile up.
        if self._cancelled > 1024 and self._cancelled * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if entry[2].expire is not None]
            heapq.heapify(self._heap)
            self._cancelled = 0

    def close(self) -> None:
        """Forget every deadline (none expires after this) and stop the timer."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for _, _, deadline in self._heap:
            deadline.expire = None
        self._heap.clear()
        self._cancelled = 0

    def _schedule(self, now: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = float("inf")
        if self._heap:
            # Not before the next tick: deadlines that come due close together are expired in one sweep.
            self._timer_at = max(self._heap[0][0], now + self._tick_s)
            self._timer = self._loop.call_at(self._timer_at, self._sweep)

    def _sweep(self) -> None:
        self._timer = None
        now = self._loop.time()
        expired = 0
        while self._heap and self._heap[0][0] <= now:
            deadline = heapq.heappop(self._heap)[2]
            expire, deadline.expire = deadline.expire, None
            if expire is None:
                self._cancelled -= 1
                continue
            expire()
            expired += 1
            if expired >= self._batch and self._heap and self._heap[0][0] <= now:
                self._timer_at = now  # more are due: go on after whatever else is ready to run
                self._timer = self._loop.call_soon(self._sweep)
                return
        self._schedule(now)
