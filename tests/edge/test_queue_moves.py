"""The queue always moves: three paid requests that cannot be fetched (a server answering 500, one that hangs
mid-download) at the head of the queue do not stop the venue's playlist behind them. Real processes: the hub,
``djamms-edge run`` with yt-dlp against a loopback media server."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from djamms_edge.hub.store.base import Song
from djamms_edge.hub.store.sqlite import SqliteStore
from tests.edge.media.http_server import MediaServer
from tests.edge.sync import test_daemons
from tests.edge.sync.test_daemons import VENUE, LoopThread, World, wait_until

tracks = test_daemons.tracks  # the daemon tests' fixture: media rendered once per module

SLOW_FETCH_S = 2.0


@pytest.fixture
def media(tracks: list[Path], tmp_path: Path) -> Iterator[MediaServer]:
    served = tmp_path / "served"
    served.mkdir()
    for track in tracks:
        (served / f"{track.stem.split(' - ')[1].replace(' ', '')}.m4a").write_bytes(track.read_bytes())
    thread = LoopThread()
    server = MediaServer(served)
    thread.run(server.start())
    yield server
    thread.run(server.close())
    thread.close()


async def _url_playlist(hub_db: Path, urls: list[str]) -> None:
    store = SqliteStore(hub_db)
    await store.open()
    now = int(time.time() * 1000)
    playlist = await store.create_playlist(VENUE, "by url", now)
    for n, url in enumerate(urls):
        await store.add_track(playlist.playlist_id, Song(url, f"Track {n}", "House band", 5.6), now)
    await store.activate_playlist(VENUE, playlist.playlist_id, now)
    await store.close()


def _pay_for(world: World, url: str, n: int) -> None:
    song = {"videoId": url, "title": f"Paid {n}", "artist": "Patron", "duration": 5.6}
    body = json.dumps({"song": song, "paymentId": f"pay-{n}", "requesterId": f"patron-{n}"}).encode()
    request = urllib.request.Request(  # noqa: S310 -- loopback
        f"{world.url}/api/v1/venues/{VENUE}/requests", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 -- loopback
        assert response.status == 201


def test_three_unfetchable_paid_requests_at_the_head_the_playlist_still_plays(
    tmp_path: Path, tracks: list[Path], media: MediaServer,
) -> None:
    world = World(tmp_path, tracks)
    playlist = [f"{media.url}/media/Song{n}.m4a" for n in range(1, 5)]
    asyncio.run(_url_playlist(tmp_path / "hub.db", playlist))
    try:
        world.start_hub()
        unfetchable = [f"{media.url}/error/Song1.m4a", f"{media.url}/stall/Song2.m4a", f"{media.url}/error/x.m4a"]
        for n, url in enumerate(unfetchable):
            _pay_for(world, url, n)
        started_at = time.time()
        world.start_box("box-a", extra_config=f"""
[edge.cache]
slow_fetch_seconds = {SLOW_FETCH_S}
""")
        first = wait_until("the playlist to play", lambda: [p for p in world.plays("box-a") if p["source"] in playlist],
                           limit=60, world=world)[0]
        # Registering, a fetch and its analysis, once the head's fetches count as slow: seconds, not minutes.
        assert first["started_at"] - started_at <= SLOW_FETCH_S + 10.0, world.logs()
        # The paid requests were tried (and are still waiting for a retry), not dropped.
        requested = {path for path, _ in media.requests}
        assert {"/error/Song1.m4a", "/stall/Song2.m4a", "/error/x.m4a"} <= requested
        assert [e["videoId"] for e in world.get("/queue/full")["priorityQueue"]] == unfetchable
        assert not [p for p in world.plays("box-a") if p["source"] in unfetchable]
    finally:
        world.close()
