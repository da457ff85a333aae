"""hub/deadlines.py: many deadlines on one timer, on a real event loop."""

from __future__ import annotations

import asyncio

from djamms_edge.hub.deadlines import Deadlines


async def test_deadlines_expire_in_order_once_each_and_cancelled_ones_never() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop, tick_s=0.01)
    expired: list[str] = []
    now = loop.time()
    for name, after in [("c", 0.15), ("a", 0.05), ("b", 0.10), ("gone", 0.07)]:
        made = deadlines.at(now + after, lambda name=name: expired.append(name))
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
        deadlines.at(due, lambda n=n: expired.append(n))
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
