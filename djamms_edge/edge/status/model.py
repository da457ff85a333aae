"""What the status page shows, in domain terms, and what it needs from the daemon.

The daemon implements ``StatusSource``; the page never reaches into the player,
the queue or the lease directly. Every record here is plain data so the JSON
API, the live updates and the metrics are all views of one ``StatusSnapshot``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Role = Literal["master", "standby", "offline"]
ROLES: tuple[Role, ...] = ("master", "standby", "offline")


@dataclass(frozen=True, slots=True)
class NowPlaying:
    entry_id: str
    title: str
    artist: str
    source_key: str
    # Seconds into the media file. ``position`` was sampled at wall-clock
    # ``position_at`` (unix seconds) so a viewer can advance it smoothly
    # between updates instead of the daemon publishing every tick.
    position: float
    position_at: float
    real_start: float
    real_end: float
    duration: float
    paused: bool

    def position_when(self, now: float) -> float:
        """Where playback is at wall-clock ``now``, advancing the sample unless paused."""
        if self.paused:
            return self.position
        return min(self.position + max(0.0, now - self.position_at), self.real_end)


@dataclass(frozen=True, slots=True)
class QueueItem:
    entry_id: str
    title: str
    artist: str
    source_key: str
    requested_by: str = ""


@dataclass(frozen=True, slots=True)
class HubLink:
    connected: bool
    since: float  # unix seconds of the last change of ``connected``
    detail: str = ""  # e.g. the last error while disconnected
    configured: bool = True  # False: this box runs without a hub (local playlist)
    refused: bool = False  # the hub answers but refuses this box (a token for another box or venue)


@dataclass(frozen=True, slots=True)
class CacheUse:
    bytes_used: int
    bytes_cap: int
    files: int


@dataclass(frozen=True, slots=True)
class AnalysisProgress:
    done: int
    total: int
    running: bool


@dataclass(frozen=True, slots=True)
class PairingCode:
    """A box without a token waits for staff to enter this code in the console."""

    code: str  # as shown: "K7P-Q4X"
    expires_at: float  # unix seconds
    console_url: str  # where staff type it


@dataclass(frozen=True, slots=True)
class RecentError:
    at: float  # unix seconds
    message: str


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    version: int  # bumped by the source on every change worth showing
    role: Role
    hub: HubLink
    now_playing: NowPlaying | None
    priority_queue: tuple[QueueItem, ...]
    main_queue: tuple[QueueItem, ...]  # the next few of the rotation, not all of it
    cache: CacheUse | None  # None: this box has no media cache running
    analysis: AnalysisProgress | None  # None: no idle-night analysis on this box
    recent_errors: tuple[RecentError, ...]  # newest last, at most a handful
    errors_total: int  # since start; the metrics counter
    volume: float  # 0..100
    venue_id: str
    device_id: str
    software_version: str
    problems: tuple[str, ...] = ()  # what `djamms-edge doctor` finds wrong, one sentence each with its fix
    pairing: PairingCode | None = None  # set while the box waits to be paired (edge/pairing.py)


class ControlRefused(Exception):
    """The daemon cannot do this now (e.g. a standby asked to skip); shown to the user as is."""


class StatusSource(Protocol):
    """What the daemon gives the status page."""

    def snapshot(self) -> StatusSnapshot: ...

    async def wait_changed(self, after: int) -> int:
        """Return the current version as soon as it is greater than ``after``."""
        ...

    async def skip(self) -> None: ...

    async def pause(self) -> None: ...

    async def resume(self) -> None: ...

    async def set_volume(self, volume: float) -> None: ...


class ChangeCounter:
    """A version number that waiters can block on: the "changed" half of a source.

    Sources call ``bump()`` when anything shown changes; each live client waits
    for a version newer than the one it last sent, so bursts of changes collapse
    into one update per client and nobody polls. Call it on the event loop's thread.
    """

    def __init__(self) -> None:
        self._version = 0
        self._changed = asyncio.Event()

    @property
    def version(self) -> int:
        return self._version

    def bump(self) -> int:
        # Wake everyone waiting on the current event, then hand out a fresh one
        # for the next change: no task, no lock, usable from plain callbacks.
        self._version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return self._version

    async def wait(self, after: int) -> int:
        while self._version <= after:
            await self._changed.wait()
        return self._version


def snapshot_to_json(snapshot: StatusSnapshot, now: float) -> dict[str, Any]:
    """The JSON body of ``/api/status`` and of each live update.

    ``server_time`` lets a viewer advance ``position`` from ``position_at`` with the
    box's clock rather than its own, which may be minutes off on a phone.
    """
    return {**dataclasses.asdict(snapshot, dict_factory=_finite_dict), "server_time": now}


def _finite_dict(items: list[tuple[str, Any]]) -> dict[str, Any]:
    # NaN and infinity are not JSON: a browser's JSON.parse rejects the whole update. An unknown
    # number (mpv reports an endless stream's duration as inf) becomes null instead.
    return {key: None if isinstance(value, float) and not math.isfinite(value) else value for key, value in items}
