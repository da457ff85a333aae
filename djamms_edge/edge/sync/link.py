"""The daemon's hub side in one piece: sync database, hub client, EdgeSync and the HubQueue,
wired to the playback engine (the lease's Play/Halt become ``engine.set_active``).

The daemon builder does: ``link = await stack.enter_async_context(open_hub_link(edge))``, builds the
engine over ``link.queue`` with ``active=False``, ``link.attach(engine)``, and after ``engine.start()``
``await link.start()`` with ``stack.push_async_callback(link.stop)`` so that on the way out the lease
is released (and the standby plays) before the player is closed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from djamms_edge.edge.config import EdgeConfig
from djamms_edge.edge.device import instance_id
from djamms_edge.edge.player.engine import PlaybackEngine
from djamms_edge.edge.sync.config import SyncConfig
from djamms_edge.edge.sync.device_report import DeviceReporter
from djamms_edge.edge.sync.engine import EdgeSync
from djamms_edge.edge.sync.hub_api import HubApi, PlayPosition
from djamms_edge.edge.sync.hub_client import HubClient
from djamms_edge.edge.sync.hub_queue import HubQueue
from djamms_edge.edge.sync.lease import LeaseState
from djamms_edge.edge.sync.store import open_sync_db
from djamms_edge.shared.sqlite import Database

log = logging.getLogger(__name__)

class HubLink:
    def __init__(self, api: HubApi, db: Database, config: SyncConfig) -> None:
        self.sync = EdgeSync(api, db, config, on_play=self._play, on_halt=self._halt, on_queue_changed=self._changed,
                             on_skip=self._skip)
        self.queue = HubQueue(self.sync)
        self._engine: PlaybackEngine | None = None
        self.reporter = DeviceReporter()  # what register/heartbeat tell the hub; set problems to the doctor's

    def lease(self) -> LeaseState:
        """For the status page: role, epoch, hub reachability."""
        return self.sync.lease

    def refusal(self) -> str | None:
        """For the status page: why the hub refused this box's registry requests (wrong token or venue), if it does."""
        return self.sync.refusal

    def subscribe_lease(self, on_change: Callable[[], None]) -> None:
        """For the status page: told at once when the role or the hub's reachability changes."""
        self.sync.subscribe_lease(on_change)

    def attach(self, engine: PlaybackEngine) -> None:
        self._engine = engine
        self.sync.position = lambda: _position(engine)
        self.reporter.engine = engine

    def _play(self, epoch: int) -> None:
        if self._engine is not None:
            self._engine.set_active(True)
        self.queue.changed()

    def _halt(self, reason: str) -> None:
        if self._engine is not None:
            self._engine.set_active(False)

    def _changed(self) -> None:
        self.queue.changed()

    async def _skip(self, entry_id: str) -> None:
        """Staff skipped ``entry_id`` from the console: skip it if it is what this box plays (a skip replayed
        from the log after an outage names an entry long gone, and skips nothing)."""
        engine = self._engine
        playing = engine.status().now_playing if engine is not None else None
        if engine is not None and playing is not None and playing.entry.entry_id == entry_id:
            await engine.skip()

    async def start(self) -> None:
        await self.sync.start()

    async def stop(self) -> None:
        await self.sync.stop()


def _position(engine: PlaybackEngine) -> PlayPosition | None:
    """Where the engine's player is, for the heartbeat (a box taking over resumes there)."""
    playing = engine.status().now_playing
    if playing is None or playing.position is None:
        return None
    return PlayPosition(playing.entry.entry_id, playing.position)


@contextlib.asynccontextmanager
async def open_hub_link(edge: EdgeConfig) -> AsyncIterator[HubLink]:
    """``edge.device_id`` as the daemon resolved it (``djamms_edge.edge.device.device_id``)."""
    db = open_sync_db(edge.state_dir)
    await db.open()
    reporter = DeviceReporter()
    client = HubClient(
        edge.hub.url, edge.hub.device_token, edge.venue_id, edge.device_id, timeout_s=edge.sync.request_timeout_s,
        report=reporter, instance_id=instance_id(edge.state_dir),
    )
    link = HubLink(client, db, edge.sync)
    link.reporter = reporter
    log.info("hub %s, venue %s, this box is %s", edge.hub.url, edge.venue_id, client.device_id)
    try:
        yield link
    finally:
        await client.close()
        await db.close()
