"""The prefetcher follows the *current* upcoming list, with the real media cache and yt-dlp against a loopback
server: a download that hangs (an offline box, a dead video retrying with backoff) never holds up the others,
and one whose entry left the queue is cancelled."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from djamms_edge.edge.media.cache import MediaCache
from djamms_edge.edge.media.config import AnalysisConfig, CacheConfig, FetchConfig
from djamms_edge.edge.media.fetcher import YtDlpFetcher
from djamms_edge.edge.player.engine import EngineState, EngineStatus
from djamms_edge.edge.player.prefetch import fetch_window, keep_prefetched
from djamms_edge.edge.player.seams import render_tone
from djamms_edge.edge.queue.model import QueueEntry
from djamms_edge.edge.queue.source import Outcome
from tests.edge.media.http_server import MediaServer
from tests.edge.sync.hubs import eventually
from tests.edge.tones import rendered


@dataclass
class ListQueue:
    """A queue whose upcoming list the test replaces, as a hub's ``main_replaced`` does."""

    entries: list[QueueEntry] = field(default_factory=list)
    listeners: list[Callable[[], None]] = field(default_factory=list)

    def replace(self, *sources: str) -> None:
        self.entries = [QueueEntry(f"e{i}", s) for i, s in enumerate(sources)]
        for listener in self.listeners:
            listener()

    async def upcoming(self, count: int) -> list[QueueEntry]:
        return self.entries[:count]

    async def started(self, entry: QueueEntry) -> None: ...

    async def finished(self, entry: QueueEntry, outcome: Outcome, detail: str = "") -> None: ...

    def subscribe(self, on_change: Callable[[], None]) -> None:
        self.listeners.append(on_change)


@dataclass
class IdleEngine:
    """Nothing playing yet; counts the wake-ups the prefetcher gives it."""

    woken: asyncio.Event = field(default_factory=asyncio.Event)

    def status(self) -> EngineStatus:
        return EngineStatus(EngineState.IDLE, None, (), 100.0)

    def subscribe(self, on_change: Callable[[], None]) -> None: ...

    def media_ready(self) -> None:
        self.woken.set()


@dataclass
class Rig:
    server: MediaServer
    cache: MediaCache
    queue: ListQueue
    engine: IdleEngine


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the server serves, rendered once for the module: the tests only read them."""
    root = tmp_path_factory.mktemp("served")
    rendered(
        render_tone(root / "a.m4a", 440, lead=0.2, tone=1.0, trail=0.2),
        render_tone(root / "big.m4a", 660, lead=0.2, tone=60.0, trail=0.2),  # enough bytes to stall half-way
    )
    return root


@pytest.fixture
async def rig(tmp_path: Path, served: Path) -> AsyncIterator[Rig]:
    server = MediaServer(served)
    await server.start()
    # A stalled download hangs past the good one; the server is on loopback, allowed as a venue's own would be.
    fetch = FetchConfig(mode="audio", socket_timeout_seconds=5.0, allowed_hosts=("127.0.0.1",))
    fetcher = YtDlpFetcher(fetch, tmp_path / "cache" / ".partial")
    cache = MediaCache(tmp_path / "media.db", tmp_path / "cache", fetcher, AnalysisConfig(), CacheConfig())
    await cache.open()
    queue, engine = ListQueue(), IdleEngine()
    task = asyncio.create_task(keep_prefetched(queue, cache, engine, fetch=3, protect=5))
    try:
        yield Rig(server, cache, queue, engine)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 40)
        await server.close()
        await cache.close()


async def until_requested(server: MediaServer, path: str) -> None:
    await eventually(lambda: any(target == path for target, _ in server.requests), within=20)


async def until_playable(rig: Rig, key: str) -> None:
    async def playable() -> bool:
        return await rig.cache.playable(key) is not None

    await eventually(playable, within=20)


async def test_a_hanging_download_does_not_hold_up_the_next_one(rig: Rig) -> None:
    stalled, good = f"{rig.server.url}/stall/big.m4a", f"{rig.server.url}/media/a.m4a"
    rig.queue.replace(stalled, good)
    await until_playable(rig, good)
    # The engine hears of it as soon as the fetch settles, not when the stalled one gives up.
    await eventually(rig.engine.woken.is_set, within=5)
    assert await rig.cache.playable(stalled) is None


async def test_a_replaced_queue_cancels_the_old_downloads_and_fetches_the_new(rig: Rig) -> None:
    stalled, good = f"{rig.server.url}/stall/big.m4a", f"{rig.server.url}/media/a.m4a"
    rig.queue.replace(stalled)
    await until_requested(rig.server, "/stall/big.m4a")
    rig.queue.replace(good)
    await until_playable(rig, good)
    await eventually(rig.engine.woken.is_set, within=5)
    # The stalled download was cancelled: its scratch directory goes once its thread sees the cancel.
    await eventually(lambda: not any(rig.cache.work_dir.glob("*")), within=20)
    assert (await rig.cache.entry(stalled)) is None  # cancelled, not recorded as failed


@pytest.mark.parametrize(
    ("upcoming", "trouble", "window"),
    [
        ("abcdef", "", "abc"),  # nothing in trouble: the first three
        ("abcdef", "abc", "abcdef"),  # three in trouble at the head: three more beside them
        ("abcdef", "b", "abcd"),  # one in the middle: one more
        ("abcdef", "abcdef", "abcdef"),  # all of them: every one is kept at, none is left out
        ("ab", "a", "ab"),  # a short queue
        ("", "", ""),
    ],
)
def test_the_fetch_window_widens_past_entries_in_trouble(upcoming: str, trouble: str, window: str) -> None:
    assert "".join(fetch_window(list(upcoming), 3, lambda key: key in trouble)) == window
