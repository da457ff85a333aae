"""Rate limiters: the shared PostgreSQL buckets behave exactly like the in-memory ones, across instances."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from djamms_edge.hub.ratelimit import LocalRateLimiter, RateLimiter
from djamms_edge.hub.store.postgres import PostgresStore

# (seconds since start, key, expected answer) for a budget of 3 per 60 s.
SCRIPT = [
    (0, "a", True), (0, "a", True), (0, "a", True), (0, "a", False),  # the budget, then no more
    (0, "b", True),                                                  # keys are independent
    (19, "a", False),                                                # 19 s refill 0.95 of a token
    (20, "a", True), (20, "a", False),                               # 20 s refill exactly one
    (200, "a", True), (200, "a", True), (200, "a", True), (200, "a", False),  # never more than full
    (190, "a", False),                                               # a clock behind gives nothing back
]


@pytest.fixture(params=["in-memory", "postgresql"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "in-memory":
        yield LocalRateLimiter(3, 60)
        return
    store = PostgresStore(request.getfixturevalue("pg_url"))
    await store.open()
    try:
        yield store.rate_limiter("test", 3, 60)
    finally:
        await store.close()


async def test_limiters_follow_the_same_script(limiter: RateLimiter) -> None:
    start = 1_700_000_000.0
    answers = [await limiter.take(key, start + at) for at, key, _ in SCRIPT]
    assert answers == [expected for _, _, expected in SCRIPT]


async def test_concurrent_takes_on_two_instances_never_overspend(pg_url: str) -> None:
    stores = [PostgresStore(pg_url), PostgresStore(pg_url)]
    for store in stores:
        await store.open()
    try:
        limiters = [store.rate_limiter("requests_per_client", 5, 60) for store in stores]
        answers = await asyncio.gather(*(limiters[i % 2].take("203.0.113.9", 1_700_000_000.0) for i in range(20)))
    finally:
        for store in stores:
            await store.close()
    assert sorted(answers) == [False] * 15 + [True] * 5


async def test_housekeeping_forgets_only_refilled_buckets(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    try:
        limiter = store.rate_limiter("test", 2, 60)
        assert await limiter.take("a", 1000.0)  # a is full again 30 s later
        await limiter.take("b", 1020.0)
        assert await store.housekeeping(1040_000) == 1  # a refilled; b not yet
        # b's bucket survived: it has one token left, not a fresh two.
        assert await limiter.take("b", 1040.0)
        assert not await limiter.take("b", 1040.0)
    finally:
        await store.close()
