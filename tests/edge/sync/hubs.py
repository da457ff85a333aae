"""Hubs for the sync tests: the real hub on a loopback port, and the in-memory fake, behind one adapter.

Both offer: an edge-side ``api(device)`` (HubClient over HTTP / FakeHub), seeding a playlist, a patron's
paid request, and taking the hub away and back.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from djamms_edge.edge.sync.fake_hub import FakeHub, FakeVenue
from djamms_edge.edge.sync.hub_api import HubApi
from djamms_edge.edge.sync.hub_client import HubClient
from djamms_edge.hub.app import create_app
from djamms_edge.hub.auth import issue_device_token
from djamms_edge.hub.config import HubConfig, LimitsConfig, RegistryConfig
from djamms_edge.hub.store.base import Song
from djamms_edge.hub.store.sqlite import SqliteStore
from tests.ports import reserved_port

SECRET = "s" * 40
VENUE = "venue-1"
Json = dict[str, Any]


def song(n: int, artist: str | None = None, duration: float = 200.0) -> Json:
    return {"videoId": f"vid{n:08d}", "title": f"Song {n}", "artist": artist or f"Artist {n}", "duration": duration}


class HubUnderTest(Protocol):
    kind: str

    def api(self, device: str) -> HubApi: ...

    async def set_playlist(self, songs: list[Json]) -> None: ...

    async def paid_request(self, song: Json, payment_id: str) -> None: ...

    async def go_down(self) -> None: ...

    async def come_back(self) -> None: ...

    async def device_errors(self) -> list[Json]:
        """What staff would read: the venue's device errors, newest first."""
        ...

    async def close(self) -> None: ...


class RealHub:
    """``djamms-hub`` in this process on 127.0.0.1 (an ephemeral port, kept across a stop/start)."""

    kind = "real"

    def __init__(self, tmp_path: Path, stale_after_s: float) -> None:
        self.config = HubConfig(
            jwt_secret=SECRET,
            registry=RegistryConfig(stale_after_s=stale_after_s),
            limits=LimitsConfig(requests_per_client=100000, requests_per_patron=100000),
        )
        self.db_path = tmp_path / "hub.db"
        self.runner: web.AppRunner | None = None
        self.store: SqliteStore | None = None
        self.ports = ExitStack()  # its port, held across a stop/start until close()
        self.port = self.ports.enter_context(reserved_port())
        self.clients: list[HubClient] = []
        self._patron: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.store = SqliteStore(self.db_path)
        app = create_app(self.config, self.store)
        self.runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()

    async def seed(self) -> None:
        assert self.store is not None
        await self.store.create_venue(VENUE, "Test venue", _ms())

    def token(self, device: str) -> str:
        return issue_device_token(SECRET, VENUE, device, time.time(), 3600)

    async def device_errors(self) -> list[Json]:
        assert self.store is not None
        return await self.store.device_errors(VENUE, 100)

    def api(self, device: str) -> HubClient:
        client = HubClient(self.url, self.token(device), VENUE, device, timeout_s=2.0)
        self.clients.append(client)
        return client

    async def set_playlist(self, songs: list[Json]) -> None:
        assert self.store is not None
        playlist = await self.store.create_playlist(VENUE, "house", _ms())
        for item in songs:
            await self.store.add_track(playlist.playlist_id, Song(**_song_args(item)), _ms())
        await self.store.activate_playlist(VENUE, playlist.playlist_id, _ms())

    async def paid_request(self, song: Json, payment_id: str) -> None:
        if self._patron is None:
            self._patron = aiohttp.ClientSession()
        body = {"song": song, "paymentId": payment_id, "requesterId": "patron-1"}
        async with self._patron.post(f"{self.url}/api/v1/venues/{VENUE}/requests", json=body) as response:
            answer = await response.json()
            assert response.status in (200, 201), answer

    async def go_down(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def come_back(self) -> None:
        await self.start()

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        if self._patron is not None:
            await self._patron.close()
        await self.go_down()
        self.ports.close()


class FakeTestHub:
    kind = "fake"

    def __init__(self, stale_after_s: float) -> None:
        self.venue = FakeVenue(VENUE, stale_after=stale_after_s)

    def api(self, device: str) -> FakeHub:
        return FakeHub(self.venue, device)

    async def device_errors(self) -> list[Json]:
        return list(reversed(self.venue.errors.values()))

    async def set_playlist(self, songs: list[Json]) -> None:
        await self.venue.set_playlist(songs)

    async def paid_request(self, song: Json, payment_id: str) -> None:
        await self.venue.paid_request(song, payment_id)

    async def go_down(self) -> None:
        await self.venue.set_down(True)

    async def come_back(self) -> None:
        await self.venue.set_down(False)

    async def close(self) -> None:
        return None


async def make_hub(kind: str, tmp_path: Path, stale_after_s: float) -> HubUnderTest:
    if kind == "fake":
        return FakeTestHub(stale_after_s)
    hub = RealHub(tmp_path, stale_after_s)
    await hub.start()
    await hub.seed()
    return hub


def _ms() -> int:
    return int(time.time() * 1000)


def _song_args(item: Json) -> Json:
    return {"video_id": item["videoId"], "title": item["title"], "artist": item["artist"], "duration": item["duration"]}


async def eventually(predicate: Any, within: float = 5.0, interval: float = 0.02) -> None:
    """Wait until ``predicate()`` (sync or async) is true; fail with a clear message after ``within`` s."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)
