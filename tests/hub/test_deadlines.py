"""hub/deadlines.py: many deadlines on one timer, on a real event loop."""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
from collections import Counter
from collections.abc import Callable

from djamms_edge.hub.deadlines import Deadlines
from djamms_edge.hub.serving import DEADLINE_TICK_S


async def test_deadlines_expire_in_order_once_each_and_cancelled_ones_never() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop, tick_s=0.01)
    expired: list[str] = []
    now = loop.time()
    for name, after in [("c", 0.15), ("a", 0.05), ("b", 0.10), ("gone", 0.07)]:
        made = deadlines.at(now + after, functools.partial(expired.append, name))
        if name == "gone":
            deadlines.cancel(made)
            deadlines.cancel(made)  # twice is harmless
    assert len(deadlines) == 3
    await asyncio.sleep(0.08)
    assert expired == ["a"]
    await asyncio.sleep(0.15)
    assert expired == ["a", "b", "c"] and len(deadlines) == 0


async def test_a_crowd_due_together_is_expired_in_batches_with_the_loop_free_between() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop, tick_s=0.01, batch=10)
    expired: list[int] = []
    turns: list[int] = []  # how many had expired each time another callback got the loop

    def other_work() -> None:
        turns.append(len(expired))
        if len(expired) < 100:
            loop.call_soon(other_work)

    due = loop.time() + 0.02
    for n in range(100):
        deadlines.at(due, functools.partial(expired.append, n))
    loop.call_soon(other_work)
    await asyncio.sleep(0.2)
    assert expired == list(range(100))  # in the order they were set
    progress = sorted({t for t in turns if 0 < t < 100})
    assert progress and all(b - a <= 10 for a, b in zip([0, *progress], progress, strict=False))


async def test_a_closed_set_expires_nothing_and_many_cancellations_do_not_pile_up() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop, tick_s=0.01)
    expired: list[int] = []
    made = [deadlines.at(loop.time() + 60, lambda: expired.append(1)) for _ in range(5000)]
    for deadline in made[:4000]:
        deadlines.cancel(deadline)
    assert len(deadlines) == 1000 and len(deadlines._heap) < 5000  # rebuilt once half were cancelled
    deadlines.at(loop.time() + 0.02, lambda: expired.append(2))
    deadlines.close()
    after_close = deadlines.at(loop.time(), lambda: expired.append(3))
    await asyncio.sleep(0.1)
    assert expired == [] and not after_close.pending and len(deadlines) == 0


class VirtualHandle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class VirtualLoop:
    """The little of an event loop ``Deadlines`` uses, on a clock that moves only from timer to timer."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, VirtualHandle, Callable[[], None]]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> VirtualHandle:
        handle = VirtualHandle()
        heapq.heappush(self._timers, (when, next(self._order), handle, callback))
        return handle

    def call_soon(self, callback: Callable[[], None]) -> VirtualHandle:
        return self.call_at(self.now, callback)

    def run_until(self, until: float) -> None:
        while self._timers and self._timers[0][0] <= until:
            when, _, handle, callback = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            if not handle.cancelled:
                callback()


def test_the_hubs_deadlines_trickle_out_instead_of_coming_in_bursts() -> None:
    """A slow-client attack's head deadlines come due all the time (~650 a second with 5,000 connections, each
    reconnecting when cut). Each cut connection comes straight back, so the cuts should trickle: at the hub's
    tick a second's 650 deadlines are cut a few at a time, not ~65 every tenth of a second (the old tick),
    whose reconnect bursts kept the hub and everything else on a 2-core box waiting for a CPU
    (bench/hub_load.py's steady p99)."""
    loop = VirtualLoop()
    deadlines = Deadlines(loop, tick_s=DEADLINE_TICK_S)  # type: ignore[arg-type]
    cut_at: Counter[float] = Counter()
    for n in range(650):
        deadlines.at(n / 650, lambda: cut_at.update([loop.now]))
    loop.run_until(2.0)
    assert sum(cut_at.values()) == 650 and max(cut_at.values()) <= 10
    assert max(when - due for when, due in zip(sorted(cut_at.elements()), (n / 650 for n in range(650)),
                                               strict=True)) <= DEADLINE_TICK_S + 1e-9
