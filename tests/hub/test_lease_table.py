"""Heartbeats answered from the hub's memory (hub/leases.py) on a real hub, each store: the answers are the
store's, what the beats say reaches the store behind them, and every registry act goes to the store first.
Two instances on one PostgreSQL: tests/hub_pg/test_lease_instances.py."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import aiohttp

from djamms_edge.hub.auth import issue_device_token
from tests.hub.conftest import SECRET, Hub
from tests.hub.served import hub_config_file, serving
from tests.hub.test_registry import heartbeat, register

REPORT = {"version": "1.2.3", "problems": ["disk almost full"],
          "nowPlaying": {"entryId": "e-1", "title": "Song", "position": 12.5, "duration": 200}}


async def beat(hub: Hub, venue: str, device: str, **body: object) -> dict:
    status, answer = await hub.call("POST", f"/api/v1/venues/{venue}/players/heartbeat", {"deviceId": device, **body},
                                    hub.device(venue, device))
    assert status == 200, answer
    return dict(answer)


async def stored_beat_ms(hub: Hub, venue: str) -> int:
    """The master's last beat as the store has it (read past the hub, which would flush first)."""
    master = await hub.store.current_master(venue)
    assert master is not None
    return master.last_heartbeat_ms


async def test_beats_from_memory_reach_the_store_behind_them(hub: Hub) -> None:
    venue = await hub.venue()
    await register(hub, venue, "box-a")
    assert (await beat(hub, venue, "box-a"))["status"] == "updated"  # the store's answer admits the lease
    first = await stored_beat_ms(hub, venue)
    for _ in range(5):
        hub.clock.advance(1)
        assert await beat(hub, venue, "box-a", **REPORT) == {"status": "updated", "epoch": 1, "maxRequestDuration": 300}
    assert await stored_beat_ms(hub, venue) == first  # answered from memory: not written yet...
    deadline = asyncio.get_running_loop().time() + 5
    while await stored_beat_ms(hub, venue) == first:  # ...but within the flush interval (1 s)
        assert asyncio.get_running_loop().time() < deadline, "the beats never reached the store"
        await asyncio.sleep(0.1)
    last = await stored_beat_ms(hub, venue)
    assert 5000 <= last - first < 7000  # the newest beat's time (5 s of advanced clock and a little real time)
    devices = {d.device_id: d for d in await hub.store.list_devices(venue)}
    assert (devices["box-a"].report.version, devices["box-a"].reported_at_ms) == ("1.2.3", last)


async def test_readers_see_every_beat_answered_before_them(hub: Hub) -> None:
    venue = await hub.venue()
    await register(hub, venue, "box-a")
    await beat(hub, venue, "box-a")
    hub.clock.advance(2)
    await beat(hub, venue, "box-a", **REPORT)
    now_ms = int(hub.clock() * 1000)
    _, master = await hub.call("GET", f"/api/v1/venues/{venue}/master", headers=hub.staff(venue))
    assert abs(master["master"]["lastHeartbeat"] - now_ms) < 1000
    _, board = await hub.call("GET", f"/api/v1/venues/{venue}/dashboard", headers=hub.staff(venue))
    assert [(b["deviceId"], b["version"], b["problems"]) for b in board["boxes"]] == \
        [("box-a", "1.2.3", ["disk almost full"])]


async def test_a_release_or_a_take_over_ends_the_answers_from_memory(hub: Hub) -> None:
    venue = await hub.venue()
    await register(hub, venue, "box-a")
    for _ in range(3):
        assert (await beat(hub, venue, "box-a"))["status"] == "updated"
    released = await hub.call("POST", f"/api/v1/venues/{venue}/players/release", {"deviceId": "box-a"},
                              hub.device(venue, "box-a"))
    assert released == (200, {"status": "released", "epoch": 1})
    assert (await beat(hub, venue, "box-a"))["status"] == "not_found"

    assert (await register(hub, venue, "box-a"))[1]["epoch"] == 2
    for _ in range(3):
        assert (await beat(hub, venue, "box-a")) == {"status": "updated", "epoch": 2, "maxRequestDuration": 300}
    hub.clock.advance(121)  # box-a went silent: stale
    _, taken = await register(hub, venue, "box-b")
    assert (taken["status"], taken["epoch"]) == ("registered", 3)
    assert await heartbeat(hub, venue, "box-a") == (200, {"status": "not_found", "epoch": 3,
                                                          "maxRequestDuration": 300})


async def test_a_copied_token_is_refused_although_the_box_beats_from_memory(hub: Hub) -> None:
    venue = await hub.venue()
    box, copy = {"instanceId": "proc-box"}, {"instanceId": "proc-copy"}
    assert (await hub.call("POST", f"/api/v1/venues/{venue}/players/register", {"deviceId": "box-a", **box},
                           hub.device(venue, "box-a")))[1]["status"] == "registered"
    for _ in range(3):
        assert (await beat(hub, venue, "box-a", **box))["status"] == "updated"
    refused = await beat(hub, venue, "box-a", **copy)
    assert (refused["status"], refused["reason"]) == ("conflict", "second_process")
    assert (await beat(hub, venue, "box-a", **box))["status"] == "updated"


async def test_a_kill_9_of_the_hub_loses_at_most_liveness_never_the_lease(tmp_path: Path) -> None:
    """SQLite: the hub dies without writing what it held; the next one finds the lease and its epoch intact."""
    config = hub_config_file(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJAMMS_")}
    seeded = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "djamms_edge.hub.cli", "seed-demo", "--config", str(config), "--venue", "v-kill",
        "--device", "box-a", stdout=asyncio.subprocess.PIPE, env=env)
    tokens = json.loads((await seeded.communicate())[0])
    async with aiohttp.ClientSession() as http:

        async def call(url: str, action: str, device: str = "box-a") -> dict:
            token = tokens["deviceToken"] if device == "box-a" else issue_device_token(SECRET, "v-kill", device,
                                                                                       time.time(), 60)
            async with http.post(f"{url}/api/v1/venues/v-kill/players/{action}", json={"deviceId": device},
                                 headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status == 200, await resp.text()
                return dict(await resp.json())

        async with serving(config) as hub:
            assert (await call(hub.url, "register"))["status"] == "registered"
            answers = [await call(hub.url, "heartbeat") for _ in range(20)]
            last_beat_ms = int(time.time() * 1000)
            hub.kill()
        assert {(a["status"], a["epoch"]) for a in answers} == {("updated", 1)}

        async with serving(config) as hub:
            async with http.get(f"{hub.url}/api/v1/venues/v-kill/master",
                                headers={"Authorization": f"Bearer {tokens['staffToken']}"}) as resp:
                master = (await resp.json())["master"]
            assert (master["deviceId"], master["epoch"], master["stale"]) == ("box-a", 1, False)
            assert master["lastHeartbeat"] <= last_beat_ms  # some liveness may be lost, nothing else
            assert (await call(hub.url, "register", "box-b"))["status"] == "conflict"
            assert await call(hub.url, "heartbeat") == {"status": "updated", "epoch": 1, "maxRequestDuration": 300}
