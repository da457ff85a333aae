"""Real processes (a hub and edge daemons, libmpv ao=null) and paid requests served over loopback HTTP:
a crash of the master never loses the paid song it was playing, and a song longer than the limit is
judged by what the box measured, not by what the request declared."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from djamms_edge.edge.player.seams import render_tone
from djamms_edge.hub.auth import issue_user_token
from djamms_edge.hub.store.base import User
from djamms_edge.hub.store.sqlite import SqliteStore
from tests.edge.media.http_server import MediaServer
from tests.edge.sync.test_daemons import (
    HEARTBEAT_S,
    SECRET,
    STALE_S,
    START_MARGIN_S,
    VENUE,
    LoopThread,
    World,
    master_is_playing,
    tracks,  # noqa: F401 -- the module's fixture, shared
    wait_until,
)
from tests.edge.tones import rendered

LIMIT_S = 30


@pytest.fixture(scope="module")
def paid_media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, float]]]:
    """An HTTP server with a 9 s song, a 45 s one (over a 30 s limit) and a 20 s one; their trimmed lengths."""
    root = tmp_path_factory.mktemp("paid-media") / "media"
    root.mkdir()
    lengths = {"paid.m4a": 9.0, "long.m4a": 45.0, "mid.m4a": 20.0}

    rendered(*(render_tone(root / name, 400 + 50 * n, lead=0.4, tone=seconds, trail=0.4)
               for n, (name, seconds) in enumerate(lengths.items())))
    loop = LoopThread()
    server = MediaServer(root)
    loop.run(server.start())
    try:
        yield f"{server.url}/media", lengths
    finally:
        loop.run(server.close())
        loop.close()


STAFF = User("user-staff", "staff@example.com", VENUE, "staff")


@pytest.fixture
def world(tmp_path: Path, tracks: list[Path], request: pytest.FixtureRequest) -> Iterator[World]:  # noqa: F811
    made = World(tmp_path, tracks)
    asyncio.run(_add_staff(tmp_path / "hub.db"))  # tokens are checked against their user's record
    made.start_hub(getattr(request, "param", ""))
    yield made
    made.close()


async def _add_staff(db: Path) -> None:
    store = SqliteStore(db)
    await store.open()
    try:
        await store.upsert_user(STAFF, int(time.time() * 1000))
    finally:
        await store.close()


def post_request(world: World, url: str, declared: float, payment: str) -> dict[str, Any]:
    song = {"videoId": url, "title": url.rsplit("/", 1)[-1], "artist": "Patron " + payment, "duration": declared}
    body = json.dumps({"song": song, "paymentId": payment, "requesterId": "patron-1"}).encode()
    request = urllib.request.Request(  # noqa: S310 -- loopback
        f"{world.url}/api/v1/venues/{VENUE}/requests", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 -- loopback
        assert response.status == 201
        return dict(json.loads(response.read()))


def staff_requests(world: World, status: str) -> list[dict[str, Any]]:
    token = issue_user_token(SECRET, STAFF, time.time(), 3600)
    request = urllib.request.Request(  # noqa: S310 -- loopback
        f"{world.url}/api/v1/venues/{VENUE}/requests?status={status}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 -- loopback
        return list(json.loads(response.read())["requests"])


def test_kill_9_of_the_master_mid_paid_song_the_standby_finishes_it_and_it_is_recorded_once(
    world: World, paid_media: tuple[str, dict[str, float]]
) -> None:
    base, _ = paid_media
    world.start_box("box-a")
    wait_until("box-a playing", master_is_playing(world, "box-a"), world=world)
    b = world.start_box("box-b")
    wait_until("box-b standing by", lambda: "standby" in b.log.read_text(), world=world)
    url = f"{base}/paid.m4a"
    request_id = post_request(world, url, 9, "pay-crash")["requestId"]

    def paid_position() -> Any:
        playing = world.get("/queue/full")["nowPlaying"]
        return playing if playing and playing["videoId"] == url and (playing["position"] or 0) >= 2.0 else None

    playing = wait_until("box-a 2 s into the paid song, as the hub knows it", paid_position, limit=40, world=world)
    world.boxes["box-a"].signal(signal.SIGKILL)
    killed_at = time.time()
    cut_at = world.get("/queue/full")["nowPlaying"]["position"]

    resumed = wait_until("box-b to resume the paid song", lambda: [p for p in world.plays("box-b")
                                                                   if p["entry_id"] == playing["entryId"]],
                         limit=STALE_S + 15, world=world)[0]
    assert resumed["started_at"] - killed_at <= STALE_S + HEARTBEAT_S + START_MARGIN_S, world.logs()
    assert world.plays("box-b")[0]["entry_id"] == playing["entryId"]  # the first thing it played
    assert cut_at - 0.01 <= resumed["start_position"] <= cut_at + 2 * HEARTBEAT_S
    finished = wait_until("the paid song to end on box-b", lambda: [
        p for p in world.plays("box-b") if p["entry_id"] == playing["entryId"] and p["end_reason"]], world=world)[0]
    assert finished["end_reason"] == "finished"
    wait_until("the hub to record it", lambda: [r for r in staff_requests(world, "played")
                                                if r["requestId"] == request_id], world=world)
    history = world.get("/history?limit=1000")["history"]
    assert [h["deviceId"] for h in history if h["entryId"] == playing["entryId"]] == ["box-b"]


@pytest.mark.parametrize("world", [f"max_duration_s = {LIMIT_S}\n"], indirect=True)
def test_a_paid_song_measured_over_the_limit_is_not_played_and_becomes_refund_due(
    world: World, paid_media: tuple[str, dict[str, float]]
) -> None:
    base, lengths = paid_media
    a = world.start_box("box-a")
    wait_until("box-a playing", master_is_playing(world, "box-a"), world=world)
    long_url, mid_url = f"{base}/long.m4a", f"{base}/mid.m4a"
    too_long = post_request(world, long_url, 10, "pay-long")["requestId"]  # declares 10 s; it is 45 s
    post_request(world, mid_url, 5, "pay-mid")  # declares 5 s; it is 20 s, within the limit

    refunded = wait_until("the long request to be refund_due", lambda: [
        r for r in staff_requests(world, "refund_due") if r["requestId"] == too_long], limit=40, world=world)[0]
    assert "measured 46 seconds" in refunded["reason"] or "measured 45 seconds" in refunded["reason"]
    assert long_url not in [e["videoId"] for e in world.get("/queue/full")["priorityQueue"]]

    def mid_estimate() -> Any:
        view = world.get("/queue")
        shown = [e for e in [view["nowPlaying"], *view["queue"]] if e and e["videoId"] == mid_url]
        return shown and shown[0]["playDuration"] > 10 and shown[0]["playDuration"]

    estimate = wait_until("the public estimate of the fetched 20 s song", mid_estimate, limit=30, world=world)
    assert abs(estimate - lengths["mid.m4a"]) < 1.0
    wait_until("the 20 s song to play", lambda: any(p["source"] == mid_url for p in world.plays("box-a")),
               limit=40, world=world)
    assert all(p["source"] != long_url for p in world.plays("box-a"))
    assert "over the limit; refund reported" in a.log.read_text()
