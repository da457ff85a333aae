"""Heartbeats answered from memory (hub/leases.py) with two hub instances on one PostgreSQL: an instance
never tells a box it is master after another instance elected someone else — not after a take-over, not
after a release, not while its own writes to the database fail."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from djamms_edge.hub.config import StoreConfig
from tests.edge.sync.test_daemons import CuttableProxy
from tests.hub_pg.conftest import SERVINGS, VENUE, Serving, TwoHubs, hub_config, running_two_hubs
from tests.hub_pg.test_two_instances import post


async def player(hubs: TwoHubs, i: int, action: str, device: str) -> tuple[int, Any]:
    return await post(hubs, i, f"/venues/{VENUE}/players/{action}", {"deviceId": device, "userAgent": "t"},
                      hubs.device_token(device))


@SERVINGS
async def test_a_beat_at_one_instance_after_an_election_at_the_other_is_refused(
    pg_url: str, tmp_path: Path, serving: Serving
) -> None:
    async with running_two_hubs(serving, hub_config(pg_url, stale_after_s=1.5), tmp_path) as hubs:
        assert (await player(hubs, 0, "register", "box-old"))[1]["status"] == "registered"
        for _ in range(5):  # the first through the database, the rest from instance 0's memory
            assert (await player(hubs, 0, "heartbeat", "box-old"))[1]["status"] == "updated"
        await asyncio.sleep(1.6)  # box-old falls silent: stale
        status, taken = await player(hubs, 1, "register", "box-new")
        assert (status, taken["status"], taken["epoch"]) == (200, "registered", 2)
        assert await player(hubs, 0, "heartbeat", "box-old") == (200, {"status": "not_found", "epoch": 2,
                                                                      "maxRequestDuration": 300})


@SERVINGS
async def test_a_release_at_one_instance_ends_the_answers_from_memory_at_the_other(
    pg_url: str, tmp_path: Path, serving: Serving
) -> None:
    async with running_two_hubs(serving, hub_config(pg_url), tmp_path) as hubs:
        assert (await player(hubs, 0, "register", "box-a"))[1]["status"] == "registered"
        for _ in range(5):
            assert (await player(hubs, 0, "heartbeat", "box-a"))[1]["status"] == "updated"
        assert (await player(hubs, 1, "release", "box-a"))[1]["status"] == "released"
        assert (await player(hubs, 1, "register", "box-b"))[1]["epoch"] == 2
        # Instance 0 hears of it by PostgreSQL's notification (milliseconds), at the latest at its next flush.
        deadline = time.monotonic() + 1.5
        while (answer := (await player(hubs, 0, "heartbeat", "box-a"))[1])["status"] == "updated":
            assert time.monotonic() < deadline, "instance 0 kept answering from memory after the release"
            await asyncio.sleep(0.05)
        assert (answer["status"], answer["epoch"]) == ("not_found", 2)


@contextmanager
def relayed(pg_url: str) -> Iterator[tuple[CuttableProxy, str]]:
    """``pg_url`` through a relay the test can cut and heal: one instance loses its database, the other not."""
    parts = urlsplit(pg_url)
    assert parts.hostname == "127.0.0.1" and parts.port is not None
    proxy = CuttableProxy(parts.port)
    try:
        yield proxy, urlunsplit(parts._replace(netloc=parts.netloc.rsplit(":", 1)[0] + f":{proxy.port}"))
    finally:
        proxy.close()


@SERVINGS
async def test_an_instance_that_cannot_write_stops_answering_from_memory_before_anyone_can_take_over(
    pg_url: str, tmp_path: Path, serving: Serving
) -> None:
    """Instance 0 reaches PostgreSQL through a relay that is cut; instance 1 keeps it. Every "updated" that
    instance 0 gives while its flushes fail comes before instance 1 could elect anyone (stale_after 2 s)."""
    config = hub_config(pg_url, stale_after_s=2.0)
    with relayed(pg_url) as (proxy, relayed_url):
        cut_config = dataclasses.replace(config, store=StoreConfig(url=relayed_url))
        async with serving(cut_config, tmp_path) as cut_side, running_two_hubs(serving, config, tmp_path) as hubs:
            hubs = dataclasses.replace(hubs, urls=(cut_side, hubs.urls[1]))
            assert (await player(hubs, 0, "register", "box-old"))[1]["status"] == "registered"
            for _ in range(10):  # beats for 0.5 s: answered from memory, and a flush or two write them
                assert (await player(hubs, 0, "heartbeat", "box-old"))[1]["status"] == "updated"
                await asyncio.sleep(0.05)
            proxy.cut()  # memory answers now last until half of stale_after after the last written beat
            cut_at = time.monotonic()
            answers: list[tuple[float, int, str | None]] = []

            async def keep_beating() -> None:
                while time.monotonic() < cut_at + 4.0:
                    status, body = await player(hubs, 0, "heartbeat", "box-old")
                    answers.append((time.monotonic(), status, body.get("status") if status == 200 else None))
                    await asyncio.sleep(0.05)

            beating = asyncio.create_task(keep_beating())
            while True:  # a standby asks instance 1 until box-old is stale there
                _, taken = await player(hubs, 1, "register", "box-new")
                if taken["status"] == "registered":
                    elected_at = time.monotonic()
                    break
                assert time.monotonic() < cut_at + 5.0, taken
                await asyncio.sleep(0.05)
            await beating
            proxy.heal()  # instance 0 reaches the database again
            deadline = time.monotonic() + 10
            while (await player(hubs, 0, "heartbeat", "box-old"))[0] == 503:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
            after = await player(hubs, 0, "heartbeat", "box-old")

    updated = [at for at, status, answer in answers if answer == "updated"]
    assert updated and answers[-1][1] == 503  # it answered from memory a while, then said "unavailable"
    assert max(updated) < elected_at  # never "you are master" once box-new could be
    assert max(updated) - cut_at < 1.5  # half of stale_after after its last good write, plus a beat's way
    assert after == (200, {"status": "not_found", "epoch": 2, "maxRequestDuration": 300})
