"""An in-memory hub for unit tests: the registry, queue and feed rules the edge relies on, plus switches
to make it unreachable (for everyone, or for one edge). The contract suite runs the same tests against it and the real
hub, so it cannot quietly drift.

``FakeVenue`` is the shared state (one per venue); each edge gets its own ``FakeHub`` handle on it, the
way each box has its own HTTP client.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from djamms_edge.edge.sync.errors import HubRefused, HubUnavailable, StaleEpoch
from djamms_edge.edge.sync.hub_api import MAX_ERROR_MESSAGE, Analysis, FeedBatch, FeedMessage, Json, PlayPosition
from djamms_edge.edge.sync.lease import Conflict, Granted, HeartbeatLost, HeartbeatOk


@dataclass
class _Master:
    device: str
    epoch: int
    beat: float


@dataclass
class FakeVenue:
    venue_id: str = "venue-1"
    stale_after: float = 20.0
    down: bool = False  # every call fails as if the network were gone
    epoch: int = 0
    master: _Master | None = None
    held: set[tuple[str, int]] = field(default_factory=set)  # (device, epoch) ever granted
    priority: list[Json] = field(default_factory=list)
    main: list[Json] = field(default_factory=list)
    now_playing: Json | None = None
    log: list[tuple[int, Json]] = field(default_factory=list)
    keys: dict[str, Json] = field(default_factory=dict)
    history: list[Json] = field(default_factory=list)
    catalog: dict[str, Json] = field(default_factory=dict)
    errors: dict[tuple[str, str], Json] = field(default_factory=dict)  # (device, idempotency key) -> error
    described: dict[str, Json] = field(default_factory=dict)  # video id -> what a box said it is
    max_request_duration: float = 300.0
    refunds: dict[str, str] = field(default_factory=dict)  # request id -> reason (refund due)
    positions: dict[str, tuple[float, float]] = field(default_factory=dict)  # entry id -> (seconds, when)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def version(self) -> int:
        return self.log[-1][0] if self.log else 0

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def emit(self, change: Json) -> None:
        self.log.append((self.version + 1, change))

    async def notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def new_entry(self, queue: str, song: Json, request_id: str | None = None, *, announce: bool = True) -> Json:
        entry = {
            "entryId": f"e-{next(self._ids)}",
            "queue": queue,
            **song,
            "isRequest": request_id is not None,
            "requestId": request_id,
        }
        (self.priority if queue == "priority" else self.main).append(entry)
        if announce:
            self.emit({"type": "entry_added", "entry": entry})
        return entry

    # --- what staff and patrons do (test set-up) -------------------------------------------------

    async def set_playlist(self, songs: list[Json]) -> None:
        self.main = []
        entries = [self.new_entry("main", s, announce=False) for s in songs]
        self.emit({"type": "main_replaced", "entries": entries})
        await self.notify()

    async def set_down(self, down: bool) -> None:
        self.down = down
        await self.notify()  # open feeds notice at once, like a dropped connection

    async def paid_request(self, song: Json, payment_id: str) -> Json:
        entry = self.new_entry("priority", song, request_id=f"r-{payment_id}")
        await self.notify()
        return entry

    def snapshot(self) -> Json:
        return {
            "venueId": self.venue_id,
            "version": self.version,
            "epoch": self.epoch,
            "master": None if self.master is None else {"deviceId": self.master.device, "epoch": self.master.epoch},
            "nowPlaying": self._now_playing_with_position(),
            "priorityQueue": list(self.priority),
            "mainQueue": list(self.main),
        }


    def _now_playing_with_position(self) -> Json | None:
        if self.now_playing is None:
            return None
        seconds, at = self.positions.get(self.now_playing["entryId"], (None, None))
        return self.now_playing | {"position": seconds, "positionAt": at}


class FakeHub:
    """One edge's view of a FakeVenue (the HubApi protocol)."""

    def __init__(self, venue: FakeVenue, device_id: str) -> None:
        self.v = venue
        self.venue_id = venue.venue_id
        self.device_id = device_id
        self.cut = False  # this edge alone cannot reach the hub (a partition)
        self.max_request_duration: float | None = None

    async def set_cut(self, cut: bool) -> None:
        self.cut = cut
        await self.v.notify()

    def _reach(self) -> None:
        if self.v.down or self.cut:
            raise HubUnavailable("fake hub is unreachable")

    async def register(self) -> Granted | Conflict:
        self._reach()
        v, now = self.v, self.v.now()
        if v.master is not None and v.master.device == self.device_id:
            v.master.beat = now
            self.max_request_duration = v.max_request_duration
            return Granted("reconnected", v.master.epoch)
        if v.master is not None and now - v.master.beat < v.stale_after:
            return Conflict(v.master.device, v.master.epoch)
        v.epoch += 1
        v.master = _Master(self.device_id, v.epoch, now)
        v.held.add((self.device_id, v.epoch))
        v.emit({"type": "master", "master": {"deviceId": self.device_id, "epoch": v.epoch}})
        await v.notify()
        self.max_request_duration = v.max_request_duration
        return Granted("registered", v.epoch)

    async def heartbeat(self, position: PlayPosition | None = None) -> HeartbeatOk | HeartbeatLost:
        self._reach()
        master = self.v.master
        if master is None or master.device != self.device_id:
            return HeartbeatLost()
        master.beat = self.v.now()
        self.max_request_duration = self.v.max_request_duration
        if position is not None:
            self.v.positions[position.entry_id] = (position.seconds, master.beat)
        return HeartbeatOk()

    async def release(self) -> None:
        self._reach()
        if self.v.master is not None and self.v.master.device == self.device_id:
            self.v.master = None
            self.v.emit({"type": "master", "master": None})
            await self.v.notify()

    async def snapshot(self) -> Json:
        self._reach()
        return self.v.snapshot()

    async def changes(self, since: int) -> FeedBatch:
        self._reach()
        return FeedBatch(self.v.version, tuple(self._since(since)))

    def _since(self, since: int) -> list[FeedMessage]:
        if since > self.v.version or (self.v.log and since < self.v.log[0][0] - 1):
            return [FeedMessage("snapshot", self.v.version, self.v.snapshot())]
        return [FeedMessage("change", n, c) for n, c in self.v.log if n > since]

    async def feed(self, since: int) -> AsyncGenerator[FeedMessage, None]:
        self._reach()
        for message in self._since(since):
            since = message.version
            yield message
        yield FeedMessage("ready", self.v.version, {})
        while True:
            async with self.v.changed:
                await self.v.changed.wait_for(lambda last=since: self.v.down or self.cut or self.v.version > last)  # type: ignore[misc]
            self._reach()
            for message in self._since(since):
                since = message.version
                yield message

    def _fence(self, epoch: int) -> None:
        master = self.v.master
        if master is None or master.device != self.device_id or master.epoch != epoch:
            raise StaleEpoch("not the venue's master", self.v.epoch)

    async def now_playing(self, epoch: int, entry_id: str, song: Json | None, key: str) -> Json:
        self._reach()
        if key in self.v.keys:
            return self.v.keys[key]
        self._fence(epoch)
        v = self.v
        queued = next((e for e in (*v.priority, *v.main) if e["entryId"] == entry_id), None)
        if v.now_playing is not None and v.now_playing["entryId"] == entry_id:
            playing = {k: x for k, x in v.now_playing.items() if k not in ("deviceId", "epoch", "endedAt")}
        elif queued is not None:
            (v.priority if queued["queue"] == "priority" else v.main).remove(queued)
            v.emit({"type": "entry_removed", "entryId": entry_id})
            if queued["queue"] == "main":  # the playlist goes round
                v.new_entry("main", {k: queued[k] for k in ("videoId", "title", "artist", "duration")})
            playing = queued
        elif song is not None:
            playing = {"entryId": entry_id, "queue": "main", **song, "isRequest": False, "requestId": None}
        else:
            raise HubRefused(404, f"entry {entry_id!r} is not queued; send the song", "entryId")
        v.now_playing = playing | {"deviceId": self.device_id, "epoch": epoch}
        v.emit({"type": "now_playing", "nowPlaying": v.now_playing})
        body = {"nowPlaying": v.now_playing, "version": v.version}
        v.keys[key] = body
        await v.notify()
        return body

    async def played(self, epoch: int, entry_id: str, song: Json | None, played_at_ms: int, key: str) -> Json:
        self._reach()
        if key in self.v.keys:
            return self.v.keys[key]
        if (self.device_id, epoch) not in self.v.held:  # history is a fact: any epoch we really held
            raise StaleEpoch("this device never held that epoch", self.v.epoch)
        video = (song or {}).get("videoId") or (self.v.now_playing or {}).get("videoId")
        record = {
            "entryId": entry_id,
            "videoId": video,
            "deviceId": self.device_id,
            "epoch": epoch,
            "playedAt": played_at_ms,
        }
        self.v.history.append(record)
        if self.v.now_playing is not None and self.v.now_playing["entryId"] == entry_id:
            self.v.now_playing = self.v.now_playing | {"endedAt": played_at_ms}  # nothing to resume
        body = {"recorded": True}
        self.v.keys[key] = body
        return body

    async def report_over_limit(self, epoch: int, request_id: str, duration: float) -> Json:
        self._reach()
        self._fence(epoch)
        v = self.v
        if duration <= v.max_request_duration:
            raise HubRefused(422, f"{duration:g} seconds is within the limit", "duration")
        changed = request_id not in v.refunds
        removed = [e["entryId"] for e in v.priority if e.get("requestId") == request_id]
        if changed:
            v.refunds[request_id] = f"measured {duration:.0f} seconds"
            v.priority = [e for e in v.priority if e.get("requestId") != request_id]
            for entry_id in removed:
                v.emit({"type": "entry_removed", "entryId": entry_id})
            await v.notify()
        return {"request": {"requestId": request_id, "status": "refund_due"}, "changed": changed,
                "removedEntryIds": removed if changed else []}

    async def history(self, limit: int = 100) -> list[Json]:
        self._reach()
        return list(reversed(self.v.history))[:limit]

    async def report_analysis(self, analysis: Analysis) -> Json:
        self._reach()
        track = {
            "videoId": analysis.video_id,
            "duration": analysis.duration,
            "realStartOffset": analysis.real_start_offset,
            "realEndOffset": analysis.real_end_offset,
            "loudness": analysis.loudness,
        }
        self.v.catalog[analysis.video_id] = track
        return track

    async def report_details(self, video_id: str, title: str, artist: str, duration: float) -> Json:
        """As the hub: fills the venue's pending entries of ``video_id`` (a ``main_replaced`` when it did)."""
        self._reach()
        details = {"title": title, "artist": artist, "duration": duration}
        self.v.described[video_id] = details
        filled = [e for e in self.v.main if e.get("videoId") == video_id and e.pop("detailsPending", False)]
        for entry in filled:
            entry.update(details, detailsFrom="box")
        if filled:
            self.v.emit({"type": "main_replaced", "entries": [dict(e) for e in self.v.main]})
            await self.v.notify()
        return {"videoId": video_id, "filled": len(filled)}

    async def pending_songs(self, limit: int = 100) -> list[str]:
        self._reach()
        return list(dict.fromkeys(e["videoId"] for e in self.v.main if e.get("detailsPending")))[:limit]

    async def report_error(self, video_id: str | None, message: str, at_ms: int, key: str) -> Json:
        self._reach()
        if not 1 <= len(message) <= MAX_ERROR_MESSAGE:
            raise HubRefused(400, f"must be 1-{MAX_ERROR_MESSAGE} characters", "message")
        known = self.v.errors.get((self.device_id, key))
        if known is not None:
            return {"recorded": True, "errorId": known["errorId"], "replayed": True}
        error = {"errorId": f"err-{len(self.v.errors) + 1}", "deviceId": self.device_id, "videoId": video_id,
                 "message": message, "at": at_ms}
        self.v.errors[(self.device_id, key)] = error
        return {"recorded": True, "errorId": error["errorId"], "replayed": False}

    async def catalog(self, video_ids: list[str]) -> dict[str, Json]:
        self._reach()
        return {v: self.v.catalog[v] for v in video_ids if v in self.v.catalog}

    async def close(self) -> None:
        return None
