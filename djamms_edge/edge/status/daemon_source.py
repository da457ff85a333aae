"""The daemon's ``StatusSource``: the playback engine, its queue and the log as one snapshot.

What it reads, and only through their public interfaces:
- ``PlaybackEngine.status()`` (now playing, live position, paused/halted, volume) and
  ``subscribe()`` for changes; the controls call the engine's own skip/pause/resume/volume;
- ``QueueSource.upcoming()`` for the next few entries, re-read when the engine or the queue
  says something changed (it is an async SQLite read, so it runs in an owned task and the
  snapshot serves the last result);
- optionally the hub lease (``EdgeSync.lease``) for the role and hub link, and the media
  cache's ``usage()`` for cache use; a daemon without them shows "no hub" / "not in use";
- optionally the idle-night analysis's progress (``NightAnalyzer.progress``), read with the lease;
- WARNING+ lines of the ``djamms_edge`` loggers as recent errors (``RecentErrorLog``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from djamms_edge import __version__
from djamms_edge.edge.player.engine import EngineState, EngineStatus, PlaybackEngine
from djamms_edge.edge.queue.model import EntryKind, QueueEntry
from djamms_edge.edge.queue.source import QueueSource
from djamms_edge.edge.status.config import StatusConfig
from djamms_edge.edge.status.errors import RecentErrorLog
from djamms_edge.edge.status.model import (
    AnalysisProgress,
    CacheUse,
    ChangeCounter,
    ControlRefused,
    HubLink,
    NowPlaying,
    QueueItem,
    Role,
    StatusSnapshot,
)
from djamms_edge.edge.status.server import StatusServer, start_status_server
from djamms_edge.edge.sync.lease import LeaseState
from djamms_edge.edge.sync.lease import Role as LeaseRole
from djamms_edge.shared.tasks import TaskOwner

if TYPE_CHECKING:
    from djamms_edge.edge.night_analysis import Progress

log = logging.getLogger(__name__)

QUEUE_PREVIEW = 5  # entries of each queue the page lists
LEASE_CHECK_S = 1.0  # analysis progress has no listener (nor a lease without lease_changes): read once a second
CACHE_CHECK_S = 15.0  # cache use moves slowly (one download at a time)
ERRORS_LOGGER = "djamms_edge"

ROLE_OF_LEASE: dict[LeaseRole, Role] = {
    LeaseRole.MASTER: "master",
    LeaseRole.MASTER_OFFLINE: "master",  # still playing; the hub link shows it is cut off
    LeaseRole.STANDBY: "standby",
    LeaseRole.STARTING: "offline",
    LeaseRole.STOPPED: "offline",
}


@dataclass(frozen=True, slots=True)
class LinkState:
    """What the page shows about the hub: who we are to it, and whether it answers."""

    role: Role
    connected: bool


def link_state(engine_state: EngineState, lease: LeaseState | None) -> LinkState:
    """Pure: without a hub the box is its own master unless the engine was halted."""
    if lease is None:
        return LinkState("standby" if engine_state is EngineState.HALTED else "master", connected=False)
    return LinkState(ROLE_OF_LEASE[lease.role], connected=lease.hub_ok)


def now_playing_of(status: EngineStatus, now: float) -> NowPlaying | None:
    """Pure: the engine's current play in the page's terms."""
    current = status.now_playing
    if current is None:
        return None
    entry = current.entry
    duration = entry.duration or 0.0
    end = current.end if current.end is not None else duration
    return NowPlaying(
        entry_id=entry.entry_id,
        title=entry.title or entry.source,
        artist=entry.artist,
        source_key=entry.source,
        position=current.position if current.position is not None else current.start,
        position_at=now,
        real_start=current.start,
        real_end=end,
        duration=max(duration, end),
        paused=status.state is EngineState.PAUSED,
    )


def analysis_of(progress: Progress) -> AnalysisProgress:
    """Pure: the night analysis's progress in the page's terms."""
    return AnalysisProgress(done=progress.done, total=progress.total, running=progress.state == "analysing")


def queue_item(entry: QueueEntry) -> QueueItem:
    return QueueItem(entry.entry_id, entry.title or entry.source, entry.artist, entry.source, entry.requested_by)


class DaemonStatusSource:
    def __init__(
        self,
        engine: PlaybackEngine,
        queue: QueueSource,
        *,
        venue_id: str,
        device_id: str,
        lease: Callable[[], LeaseState] | None = None,
        lease_changes: Callable[[Callable[[], None]], None] | None = None,
        cache_usage: Callable[[], Awaitable[tuple[int, int]]] | None = None,
        cache_cap_bytes: int = 0,
        analysis: Callable[[], Progress] | None = None,
        problems: Callable[[], Sequence[str]] | None = None,
        hub_refusal: Callable[[], str | None] | None = None,
        preview: int = QUEUE_PREVIEW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._queue = queue
        self._venue_id = venue_id
        self._device_id = device_id
        self._lease = lease
        self._lease_changes = lease_changes
        self._cache_usage = cache_usage
        self._cache_cap = cache_cap_bytes
        self._analysis_progress = analysis
        self._analysis = analysis_of(analysis()) if analysis else None
        self._problems_of = problems
        self._problems: tuple[str, ...] = tuple(problems()) if problems else ()
        self._hub_refusal = hub_refusal
        self._refusal = hub_refusal() if hub_refusal else None
        self._preview = preview
        self._clock = clock
        self._changes = ChangeCounter()
        self._tasks = TaskOwner("status-source")
        self._queue_stale = asyncio.Event()
        self._priority: tuple[QueueItem, ...] = ()
        self._main: tuple[QueueItem, ...] = ()
        self._cache: CacheUse | None = None
        self._link = link_state(engine.status().state, lease() if lease else None)
        self._link_since = clock()
        self._errors: RecentErrorLog | None = None

    async def start(self) -> None:
        self._errors = RecentErrorLog(asyncio.get_running_loop(), self._changes.bump)
        logging.getLogger(ERRORS_LOGGER).addHandler(self._errors)
        self._engine.subscribe(self._on_daemon_change)
        self._queue.subscribe(self._on_daemon_change)
        if self._lease_changes is not None:  # a take-over shows at once, not at the next poll
            self._lease_changes(self._update_link)
        self._queue_stale.set()
        self._tasks.start(self._follow_queue(), "queue-preview")
        self._tasks.start(self._follow_polled(), "hub-link+analysis")
        if self._cache_usage is not None:
            self._tasks.start(self._follow_cache(self._cache_usage), "cache-usage")

    async def close(self) -> None:
        if self._errors is not None:
            logging.getLogger(ERRORS_LOGGER).removeHandler(self._errors)
        await self._tasks.close()

    # --- StatusSource ---------------------------------------------------------------------------

    def snapshot(self) -> StatusSnapshot:
        status = self._engine.status()
        errors = self._errors
        if self._lease is None:
            detail = "no hub configured: playing the local playlist"
        elif self._refusal is not None:
            detail = f"the hub refuses this box: {self._refusal}"
        else:
            detail = "" if self._link.connected else "hub unreachable"
        return StatusSnapshot(
            version=self._changes.version,
            role=self._link.role,
            hub=HubLink(
                connected=self._link.connected,
                since=self._link_since,
                detail=detail,
                configured=self._lease is not None,
                refused=self._lease is not None and self._refusal is not None,
            ),
            now_playing=now_playing_of(status, self._clock()),
            priority_queue=self._priority,
            main_queue=self._main,
            cache=self._cache,
            analysis=self._analysis,
            recent_errors=errors.recent() if errors else (),
            errors_total=errors.total if errors else 0,
            volume=status.volume,
            venue_id=self._venue_id,
            device_id=self._device_id,
            software_version=__version__,
            problems=self._problems,
        )

    async def wait_changed(self, after: int) -> int:
        return await self._changes.wait(after)

    async def skip(self) -> None:
        self._require_playing()
        await self._engine.skip()

    async def pause(self) -> None:
        self._require_playing()
        await self._engine.pause()

    async def resume(self) -> None:
        self._require_playing()
        await self._engine.resume()

    async def set_volume(self, volume: float) -> None:
        await self._engine.set_volume(volume)

    def _require_playing(self) -> None:
        status = self._engine.status()
        if status.state is EngineState.HALTED:
            raise ControlRefused("this box is not playing (standby): use the master's page")
        if status.now_playing is None:
            raise ControlRefused("nothing is playing")

    # --- following the daemon ---------------------------------------------------------------------

    def _on_daemon_change(self) -> None:
        self._queue_stale.set()
        self._update_link()  # a halt or a start of playback changes the role without a hub
        self._changes.bump()

    def _update_link(self) -> None:
        link = link_state(self._engine.status().state, self._lease() if self._lease else None)
        if link != self._link:
            if link.connected != self._link.connected:
                self._link_since = self._clock()
            self._link = link
            self._changes.bump()

    async def _follow_queue(self) -> None:
        failing = False
        while True:
            await self._queue_stale.wait()
            self._queue_stale.clear()
            try:
                entries = await self._queue.upcoming(2 * self._preview)
            except Exception as exc:  # a failing preview must not take the page (or the daemon) down
                if not failing:
                    log.warning("status page: cannot read the queue: %s", exc)
                failing = True
                continue
            failing = False
            priority = tuple(queue_item(e) for e in entries if e.kind is EntryKind.PRIORITY)[: self._preview]
            main = tuple(queue_item(e) for e in entries if e.kind is EntryKind.MAIN)[: self._preview]
            if (priority, main) != (self._priority, self._main):
                self._priority, self._main = priority, main
                self._changes.bump()

    async def _follow_polled(self) -> None:
        while True:
            self._update_link()
            analysis = analysis_of(self._analysis_progress()) if self._analysis_progress else None
            if analysis != self._analysis:
                self._analysis = analysis
                self._changes.bump()
            problems = tuple(self._problems_of()) if self._problems_of else ()
            refusal = self._hub_refusal() if self._hub_refusal else None
            if (problems, refusal) != (self._problems, self._refusal):
                self._problems, self._refusal = problems, refusal
                self._changes.bump()
            await asyncio.sleep(LEASE_CHECK_S)

    async def _follow_cache(self, usage: Callable[[], Awaitable[tuple[int, int]]]) -> None:
        while True:
            try:
                files, used = await usage()
            except Exception as exc:  # shown as unknown, retried on the next round
                log.warning("status page: cannot read cache use: %s", exc)
                cache = None
            else:
                cache = CacheUse(bytes_used=used, bytes_cap=self._cache_cap, files=files)
            if cache != self._cache:
                self._cache = cache
                self._changes.bump()
            await asyncio.sleep(CACHE_CHECK_S)


@contextlib.asynccontextmanager
async def serve_status_page(config: StatusConfig, source: DaemonStatusSource) -> AsyncIterator[StatusServer | None]:
    """The daemon's status page over ``source`` for as long as the context lasts.

    A page that cannot start (its port is taken) is one error line, not a silent venue: the daemon
    runs on without it.
    """
    await source.start()
    try:
        try:
            server: StatusServer | None = await start_status_server(config, source)
        except OSError as exc:
            log.error("status page not started on %s:%d: %s", config.host, config.port, exc)
            server = None
        try:
            yield server
        finally:
            if server is not None:
                await server.close()
    finally:
        await source.close()
