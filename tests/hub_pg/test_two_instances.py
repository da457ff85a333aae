"""Two hub instances on one PostgreSQL: the rules hold across them and the feed fans out."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from djamms_edge.hub.auth import new_link_secret
from djamms_edge.hub.store.postgres import PostgresStore
from tests.hub_pg.conftest import SERVINGS, VENUE, Serving, TwoHubs, hub_config, running_two_hubs


async def post(hubs: TwoHubs, i: int, path: str, body: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with hubs.http.post(hubs.url(i, path), json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_fifty_concurrent_registers_over_two_instances_yield_one_master(two_hubs: TwoHubs) -> None:
    async def register(i: int) -> dict[str, Any]:
        device = f"box-{i:02d}"
        status, body = await post(two_hubs, i, f"/venues/{VENUE}/players/register",
                                  {"deviceId": device, "userAgent": "test"}, two_hubs.device_token(device))
        assert status == 200, body
        return dict(body)

    answers = await asyncio.gather(*(register(i) for i in range(50)))

    winners = [a for a in answers if a["status"] == "registered"]
    assert len(winners) == 1
    assert sum(a["status"] == "conflict" for a in answers) == 49
    # Every loser was told about the one winner, whichever instance it asked.
    assert {a["currentMaster"]["deviceId"] for a in answers if a["status"] == "conflict"} == {
        f"box-{answers.index(winners[0]):02d}"
    }
    assert {a["epoch"] for a in answers} == {1}


async def test_twenty_concurrent_same_artist_requests_over_two_instances_accept_three(two_hubs: TwoHubs) -> None:
    async def request(i: int) -> tuple[int, Any]:
        song = {"videoId": "dQw4w9WgXcQ", "title": f"Song {i}", "artist": "Rick Astley", "duration": 213}
        return await post(two_hubs, i, f"/venues/{VENUE}/requests", {"song": song, "paymentId": f"pay-{i}"})

    results = await asyncio.gather(*(request(i) for i in range(20)))

    assert sorted(status for status, _ in results) == [201] * 3 + [422] * 17
    assert {body["error"] for status, body in results if status == 422} == {
        "Too many requests for this artist in the last 30 minutes"
    }
    async with two_hubs.http.get(two_hubs.url(1, f"/venues/{VENUE}/queue")) as resp:
        queue = await resp.json()
    assert [e["queue"] for e in queue["queue"]] == ["priority"] * 3


async def test_a_retried_payment_queues_once_whichever_instance_gets_it(two_hubs: TwoHubs) -> None:
    song = {"videoId": "kJQP7kiw5Fk", "title": "Despacito", "artist": "Luis Fonsi", "duration": 229}
    results = await asyncio.gather(
        *(post(two_hubs, i, f"/venues/{VENUE}/requests", {"song": song, "paymentId": "pay-retried"})
          for i in range(10))
    )
    assert sorted(status for status, _ in results) == [200] * 9 + [201]
    async with two_hubs.http.get(two_hubs.url(0, f"/venues/{VENUE}/queue")) as resp:
        assert len((await resp.json())["queue"]) == 1


async def test_a_request_on_one_instance_reaches_a_feed_subscriber_on_the_other(two_hubs: TwoHubs) -> None:
    token = two_hubs.device_token("box-feed")
    ws_url = two_hubs.url(0, f"/venues/{VENUE}/feed?since=0")
    async with two_hubs.http.ws_connect(ws_url, headers={"Authorization": f"Bearer {token}"}) as ws:
        while (await ws.receive_json(timeout=5))["type"] != "ready":
            pass
        song = {"videoId": "9bZkp7q19f0", "title": "Gangnam Style", "artist": "PSY", "duration": 253}
        sent = time.monotonic()
        status, body = await post(two_hubs, 1, f"/venues/{VENUE}/requests", {"song": song, "paymentId": "pay-feed"})
        assert status == 201, body

        message = await ws.receive_json(timeout=5)
        latency = time.monotonic() - sent

    assert message["type"] == "change"
    assert message["change"]["type"] == "entry_added"
    assert message["change"]["entry"]["videoId"] == "9bZkp7q19f0"
    print(f"cross-instance feed latency: {latency * 1000:.1f} ms")  # the bench measures its p99


@SERVINGS
async def test_the_per_client_request_limit_is_one_budget_across_instances(pg_url: str, tmp_path: Path,
                                                                          serving: Serving) -> None:
    async with running_two_hubs(serving, hub_config(pg_url, requests_per_client=4), tmp_path) as hubs:
        results = [
            await post(hubs, i, f"/venues/{VENUE}/requests",
                       {"song": {"videoId": "dQw4w9WgXcQ", "title": "t", "artist": f"artist {i}", "duration": 200},
                        "paymentId": f"pay-limit-{i}"})
            for i in range(10)
        ]
    statuses = [status for status, _ in results]
    assert statuses == [201] * 4 + [429] * 6  # in memory, each instance would have granted 4
    assert {body["field"] for status, body in results if status == 429} == {"client"}


@SERVINGS
async def test_a_stale_master_is_replaced_once_with_a_higher_epoch_and_fenced_off(
    pg_url: str, tmp_path: Path, serving: Serving
) -> None:
    async with running_two_hubs(serving, hub_config(pg_url, stale_after_s=1.5), tmp_path) as hubs:
        old_box = {"deviceId": "box-old", "userAgent": "test"}
        status, first = await post(hubs, 0, f"/venues/{VENUE}/players/register", old_box, hubs.device_token("box-old"))
        assert (status, first["status"], first["epoch"]) == (200, "registered", 1)
        # The old master misses its heartbeats. (Long enough that the new master cannot go stale while
        # the 20 contenders are still being answered, even on a loaded machine.)
        await asyncio.sleep(1.6)

        async def take_over(i: int) -> dict[str, Any]:
            device = f"box-new-{i:02d}"
            _, body = await post(hubs, i, f"/venues/{VENUE}/players/register", {"deviceId": device, "userAgent": "t"},
                                 hubs.device_token(device))
            return dict(body)

        answers = await asyncio.gather(*(take_over(i) for i in range(20)))
        fenced_status, fenced = await post(hubs, 1, f"/venues/{VENUE}/queue/advance",
                                           {"deviceId": "box-old", "epoch": 1}, hubs.device_token("box-old"))

    assert [a["status"] for a in answers].count("registered") == 1
    assert {a["epoch"] for a in answers} == {2}  # strictly one step up, whichever instance answered
    # The old master's next write, on the other instance, is refused with the current epoch.
    assert (fenced_status, fenced["error"], fenced["currentEpoch"]) == (409, "stale_epoch", 2)


async def test_a_magic_link_verified_on_both_instances_at_once_signs_in_once(two_hubs: TwoHubs, pg_url: str) -> None:
    secret, token_hash = new_link_secret()
    store = PostgresStore(pg_url)  # the link as `create` stores it: only its hash
    await store.open()
    try:
        now_ms = int(time.time() * 1000)
        await store.create_magic_link(token_hash, "staff@example.com", "https://www.djamms.app/auth", now_ms + 60_000,
                                      now_ms)
    finally:
        await store.close()

    results = await asyncio.gather(*(post(two_hubs, i, "/auth/verify", {"secret": secret}) for i in range(10)))

    assert sorted(status for status, _ in results) == [200] + [401] * 9
    assert [body["user"]["email"] for status, body in results if status == 200] == ["staff@example.com"]
