"""The daemon's watchdog health check asks the real player (libmpv) a question: a player that stops answering
stops the WATCHDOG=1 pings (systemd then restarts the daemon), without blocking the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from djamms_edge.edge.daemon import health_check
from djamms_edge.edge.player.mpv_player import MpvPlayer
from djamms_edge.shared.systemd_notify import ServiceNotifier, watchdog_pings
from djamms_edge.shared.tasks import TaskOwner
from tests.edge.player.conftest import headless_config
from tests.shared.test_systemd_notify import Listener

INTERVAL = 0.1


class WedgingMpv(MpvPlayer):
    """The real player whose core can be made to hang on a property read, as a wedged libmpv does."""

    def __init__(self) -> None:
        super().__init__(headless_config())
        self.unwedged = threading.Event()
        self.unwedged.set()
        self.reads = 0

    def _read_core(self) -> Any:
        self.reads += 1
        self.unwedged.wait()
        return super()._read_core()


async def pings_during(listen: Listener, seconds: float) -> int:
    listen.messages()
    await asyncio.sleep(seconds)
    return listen.messages().count("WATCHDOG=1")


@dataclass
class Watched:
    listen: Listener
    player: WedgingMpv
    tasks: TaskOwner


@pytest.fixture
async def watched(tmp_path: Path) -> AsyncIterator[Watched]:
    """The real player under the daemon's health check, pinging a real NOTIFY_SOCKET listener."""
    listen = Listener(str(tmp_path / "notify"))
    player = WedgingMpv()
    await player.open(lambda event: None)
    tasks = TaskOwner("test")
    notifier = ServiceNotifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
    pinger = asyncio.create_task(watchdog_pings(notifier, health_check(tasks, player), INTERVAL))
    try:
        yield Watched(listen, player, tasks)
    finally:
        player.unwedged.set()
        pinger.cancel()
        await asyncio.gather(pinger, return_exceptions=True)
        await tasks.close()
        await player.close()
        listen.sock.close()


async def test_a_player_that_stops_answering_stops_the_watchdog_pings(watched: Watched) -> None:
    listen, player = watched.listen, watched.player
    assert await pings_during(listen, 1.0) >= 5  # healthy: a ping every interval
    player.unwedged.clear()
    await asyncio.sleep(2 * INTERVAL)
    reads = player.reads
    assert await pings_during(listen, 1.0) == 0  # stuck: no pings, and the loop still runs this test
    assert player.reads == reads  # one read hangs; the later checks wait on it instead of piling up threads
    player.unwedged.set()
    await asyncio.sleep(2 * INTERVAL)
    assert await pings_during(listen, 1.0) >= 5  # answering again: pings resume


async def test_a_dead_subsystem_stops_the_pings_too(watched: Watched) -> None:
    assert await pings_during(watched.listen, 0.5) >= 2

    async def dies() -> None:
        raise RuntimeError("sync died")

    watched.tasks.start(dies(), "doomed")
    await asyncio.sleep(2 * INTERVAL)
    assert await pings_during(watched.listen, 0.5) == 0
