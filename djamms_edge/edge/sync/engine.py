"""EdgeSync: everything one box does with the hub, as three owned tasks over one SQLite file.

- the **lease runner** feeds the pure lease machine (``lease.py``) with timer ticks, registry answers
  and feed events, and turns its actions into requests and Play/Halt callbacks for the player;
- the **feed follower** keeps the replica current from the hub's change feed (WebSocket, resumed from
  the replica's version; polling while the socket cannot be had; a snapshot when told to);
- the **outbox pump** delivers what this box played, in order, exactly once.

The player side calls ``next_entry``/``upcoming`` to choose and prefetch, and ``started``/``finished``
to report; it gets ``on_play(epoch)`` / ``on_halt(reason)`` when the lease says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from djamms_edge.edge.sync import lease as L
from djamms_edge.edge.sync.config import SyncConfig
from djamms_edge.edge.sync.errors import CredentialsRefused, HubRefused, HubUnavailable, StaleEpoch
from djamms_edge.edge.sync.hub_api import MAX_ERROR_MESSAGE, Analysis, FeedMessage, HubApi, PlayPosition
from djamms_edge.edge.sync.outbox import Outbox, OutboxItem
from djamms_edge.edge.sync.replica import NeedSnapshot, Replica, ReplicaEntry, next_entry, upcoming
from djamms_edge.shared.ids import is_media_url, is_video_id
from djamms_edge.shared.song_details import SongDetails
from djamms_edge.shared.sqlite import Database, is_storage_error, or_remember
from djamms_edge.shared.tasks import TaskOwner

log = logging.getLogger(__name__)

RELEASE_WAIT_S = 2.0  # a graceful stop waits this long for the hub to take the lease back


@dataclass(frozen=True)
class Interrupted:
    """What another box (or this one, before it lost the lease) was playing when it stopped without
    finishing: a take-over resumes it from ``position`` (media seconds; None = from its cue-in)."""

    entry: ReplicaEntry
    position: float | None
ERROR_REPEAT_WINDOW_MS = 3_600_000  # one report per failure (track and message) per clock hour
DAY_MS = 86_400_000  # a song's details are reported once per video, box and day


class EdgeSync:
    def __init__(
        self,
        api: HubApi,
        db: Database,
        config: SyncConfig,
        *,
        on_play: Callable[[int], None],
        on_halt: Callable[[str], None],
        on_queue_changed: Callable[[], None] = lambda: None,
        on_skip: Callable[[str], Coroutine[Any, Any, None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.api = api
        self.db = db
        self.config = config
        self.timing = config.lease_timing()
        self.replica = Replica(db, api.venue_id, clock=wall_clock)
        self.outbox = Outbox(db, self.timing, keep_delivered=config.keep_delivered, clock=wall_clock, rng=rng)
        self.outbox.on_refused = self._on_refused
        self._on_play = on_play
        self._on_halt = on_halt
        self._on_queue_changed = on_queue_changed
        self._on_skip = on_skip
        self._clock = clock
        self._wall = wall_clock
        self._rng = rng
        self.lease = L.initial(api.device_id, clock())
        self._lease_listeners: list[Callable[[], None]] = []
        self._kick = asyncio.Event()
        self._tasks = TaskOwner(f"sync:{api.venue_id}")
        self._release_done = asyncio.Event()
        self._release_confirmed = False
        self.feed_ready = asyncio.Event()
        # The hub answered the registry with a refusal (a token for another box or venue, a revoked token): not
        # "unreachable", and said so on the status page. None once it accepts a request again.
        self.refusal: str | None = None
        # Where this box's player is (the daemon wires the engine in); sent with every heartbeat.
        self.position: Callable[[], PlayPosition | None] = lambda: None
        self._takeover: asyncio.Task[Interrupted | None] | None = None
        self._interrupted: Interrupted | None = None
        self.paired = False  # the token came from pairing: refused, the box stops to pair again (edge/pairing.py)

    # --- lifecycle --------------------------------------------------------------------------------

    @property
    def failed(self) -> asyncio.Event:
        """Set when one of the sync tasks died: the daemon stops (and systemd restarts it)."""
        return self._tasks.failed

    @property
    def failure(self) -> BaseException | None:
        return self._tasks.failure

    async def start(self) -> None:
        resume = await self.db.read(self._remembered_epoch)
        self.lease = L.initial(self.api.device_id, self._clock(), resume_epoch=resume)
        self._tasks.start(self._run_lease(), "lease")
        self._tasks.start(self._follow_feed(), "feed")
        self._tasks.start(self.outbox.run(self._deliver), "outbox")

    async def stop(self) -> None:
        """Graceful: halt, release the lease (the standby hears it at once), stop the tasks."""
        self._release_done.clear()
        was_playing = self.lease.playing
        self.handle(L.Shutdown())
        if self.lease.pending is L.Request.RELEASE:
            try:
                await asyncio.wait_for(self._release_done.wait(), RELEASE_WAIT_S)
            except TimeoutError:
                log.warning("hub did not confirm the release within %.0fs", RELEASE_WAIT_S)
        await self._tasks.close()
        if was_playing and not self._release_confirmed:
            # The hub still counts us as master, as after a crash: a restart while it stays unreachable
            # resumes playing (a single-box venue rebooted during an internet outage is not left silent).
            log.info("the hub did not take the lease back; a restart while it is unreachable plays on")
            return
        # Handed back (a standby may be playing now): a restart must not resume playing as master.
        await self._store_epoch(None)

    # --- the lease ----------------------------------------------------------------------------------

    def subscribe_lease(self, on_change: Callable[[], None]) -> None:
        """Call ``on_change`` (on the loop thread) whenever the lease's role or the hub's reachability changes."""
        self._lease_listeners.append(on_change)

    def handle(self, event: L.Event) -> None:
        """Feed one event to the lease machine and carry out what it says (on the loop thread)."""
        was_playing = self.lease.playing
        before = (self.lease.role, self.lease.hub_ok)
        self.lease, actions = L.step(self.lease, event, self._clock(), self.timing)
        if (self.lease.role, self.lease.hub_ok) != before:
            for listener in self._lease_listeners:
                listener()
        for action in actions:
            match action:
                case L.Note(message):
                    log.info("lease: %s", message)
                case L.Play(epoch):
                    if isinstance(event, L.Granted) and not was_playing:
                        # A take-over (or a start): before the first plan, ask the hub what was cut off.
                        self._interrupted = None
                        self._takeover = self._tasks.start(self._find_interrupted(), "take-over")
                    self._remember_epoch(epoch)
                    self.outbox.wake()  # master writes waiting for a confirmed lease can go now
                    self._on_play(epoch)
                case L.Halt(reason):
                    self._interrupted = None  # the next master resumes it, not this box
                    self._remember_epoch(None)
                    self._on_halt(reason)
                case L.Send(request):
                    self._tasks.start(self._request(request), f"lease-{request}")
        self._kick.set()

    async def _run_lease(self) -> None:
        while self.lease.role is not L.Role.STOPPED:
            wake_at = L.next_wakeup(self.lease)
            delay = None if wake_at is None else max(0.0, wake_at - self._clock())
            self._kick.clear()
            if delay is None or delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), delay)
            self.handle(L.Tick())

    async def _request(self, request: L.Request) -> None:
        timeout = self.config.request_timeout_s
        try:
            if request is L.Request.REGISTER:
                result: L.Event = await asyncio.wait_for(self.api.register(), timeout)
            elif request is L.Request.HEARTBEAT:
                position = self.position() if self.lease.playing else None
                result = await asyncio.wait_for(self.api.heartbeat(position), timeout)
            else:
                await asyncio.wait_for(self.api.release(), timeout)
                result = L.Released()
                self._release_confirmed = True
            self.refusal = None
        except (HubUnavailable, TimeoutError) as exc:
            log.debug("lease %s: %s", request, exc)
            result = L.Unreachable(self._rng()) if request is not L.Request.RELEASE else L.Released()
        except HubRefused as exc:
            if exc.status == 401 and request is not L.Request.RELEASE and (self.lease.playing or self.paired):
                # Revoked or replaced while playing: going on as an offline master would double the venue's
                # music once a standby takes over. The sync dies and the daemon stops; a paired box pairs again.
                raise CredentialsRefused(f"hub refused this box's token: {exc}") from None
            # A wrong token or venue: nothing this box can fix by itself; keep trying slowly and say why.
            if self.refusal is None:
                log.error("hub refused %s: %s (check edge.venue_id and the device token; djamms-edge doctor)",
                          request, exc)
            self.refusal = str(exc)
            result = L.Refused(str(exc), self._rng()) if request is not L.Request.RELEASE else L.Released()
        self.handle(result)
        if request is L.Request.RELEASE:
            self._release_done.set()

    def _remembered_epoch(self, conn: sqlite3.Connection) -> int | None:
        row = conn.execute("SELECT epoch FROM lease_memory WHERE venue_id = ?", (self.api.venue_id,)).fetchone()
        return None if row is None else row["epoch"]

    def _remember_epoch(self, epoch: int | None) -> None:
        if self.lease.role is not L.Role.STOPPED:
            self._tasks.start(self._store_epoch(epoch), "remember-epoch")

    async def _store_epoch(self, epoch: int | None) -> None:
        """For a restart during a hub outage; a disk that refuses it costs only that (the watch reports it)."""
        try:
            await self.db.write(lambda conn: self._write_epoch(conn, epoch))
        except Exception as exc:
            if not is_storage_error(exc):
                raise

    def _write_epoch(self, conn: sqlite3.Connection, epoch: int | None) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO lease_memory (venue_id, epoch, updated_ms) VALUES (?, ?, ?)",
            (self.api.venue_id, epoch, int(self._wall() * 1000)),
        )

    # --- the change feed ------------------------------------------------------------------------------

    async def _follow_feed(self) -> None:
        failures = 0
        down_since: float | None = None
        await self._start_from_snapshot()
        while True:
            try:
                async with contextlib.aclosing(self.api.feed(await self.replica.version())) as messages:
                    async for message in messages:
                        await self._on_feed(message)
                        if message.kind == "ready" and down_since is not None:
                            log.info("feed: connected again after %.0fs", self._clock() - down_since)
                            down_since, failures = None, 0
                raise HubUnavailable("feed ended")
            except (HubUnavailable, HubRefused) as exc:
                failures += 1
                if down_since is None:
                    down_since = self._clock()
                    log.warning("feed: lost the change feed (%s); polling until it is back", exc)
                # Reconnect soon (backoff with jitter); while the socket fails but HTTP works, each round
                # polls, and rounds are at most poll_interval_s apart.
                delay = L.backoff(self.timing, failures, self._rng())
                if await self._poll_once():
                    delay = min(delay, self.config.poll_interval_s)
                await asyncio.sleep(delay)

    async def _start_from_snapshot(self) -> None:
        """A fresh replica (version 0) starts from the hub's current queue instead of replaying the venue's
        whole change log: a queue replaced long ago would otherwise look upcoming for a moment, and the
        prefetcher would start downloading it. A hub that does not answer leaves the feed to catch up."""
        if await self.replica.version() != 0:
            return
        try:
            snapshot = await self.api.snapshot()
            await self._apply(FeedMessage("snapshot", int(snapshot.get("version", 0)), snapshot))
        except (HubUnavailable, HubRefused, TypeError, ValueError) as exc:
            log.info("feed: no snapshot to start from (%s); replaying the change log", exc)

    async def _on_feed(self, message: FeedMessage) -> None:
        await self._apply(message)
        if message.kind == "ready":
            self.handle(L.HubBack())
            self.outbox.wake()
            self.feed_ready.set()

    async def _poll_once(self) -> bool:
        """The HTTP fallback while the socket is down; True if the hub answered."""
        try:
            while True:
                batch = await self.api.changes(await self.replica.version())
                for message in batch.messages:
                    await self._apply(message)
                if not batch.more:
                    return True
        except (HubUnavailable, HubRefused):
            return False

    async def _apply(self, message: FeedMessage) -> None:
        try:
            await self._apply_message(message)
        except (KeyError, TypeError, ValueError) as exc:
            # A hub bug must not kill this box's sync: drop the connection, retry with backoff.
            raise HubUnavailable(f"malformed {message.kind} from the hub: {exc!r}") from None
        except sqlite3.Error as exc:
            if not is_storage_error(exc):
                raise
            # The disk is full or read-only: the replica stays as it is (the box plays what it knows) and the feed
            # is taken up again, with backoff, until the changes can be stored.
            raise HubUnavailable(f"cannot store the hub's changes ({exc})") from None

    async def _apply_message(self, message: FeedMessage) -> None:
        if message.kind == "snapshot":
            await self.replica.load_snapshot(message.body)
            master = message.body.get("master")
            if master:
                self.handle(L.MasterChanged(str(master["deviceId"]), int(master["epoch"])))
        elif message.kind == "change":
            try:
                await self.replica.apply([message.as_change()])
            except NeedSnapshot as exc:
                log.info("feed: %s; fetching a snapshot", exc)
                await self.replica.load_snapshot(await self.api.snapshot())
            if message.body.get("type") == "master":
                self._master_event(message.body.get("master"))
            elif message.body.get("type") == "skip" and self._on_skip is not None:
                # Staff pressed "skip now": the player fades out in its own task, the feed reads on.
                self._tasks.start(self._on_skip(str(message.body["entryId"])), "skip")
        else:
            return
        self._on_queue_changed()

    def _master_event(self, master: dict[str, Any] | None) -> None:
        if master is None:
            self.handle(L.LeaseReleased(self.lease.seen_epoch))
        else:
            self.handle(L.MasterChanged(str(master["deviceId"]), int(master["epoch"])))

    # --- a take-over ---------------------------------------------------------------------------------

    async def _find_interrupted(self) -> Interrupted | None:
        """The hub's now playing, if its play was cut off (its box crashed, or lost the lease) before it
        ended: the entry to resume first, from its last reported position. None when nothing was cut off,
        this box has already finished it, or the hub cannot say."""
        try:
            snapshot = await asyncio.wait_for(self.api.snapshot(), self.config.request_timeout_s)
        except (HubUnavailable, HubRefused, TimeoutError) as exc:
            log.info("take-over: cannot ask the hub what was playing (%s); starting with the queue", exc)
            return None
        playing = snapshot.get("nowPlaying")
        if not isinstance(playing, dict) or not playing.get("entryId"):
            log.info("take-over: nothing was playing")
            return None
        entry_id = str(playing["entryId"])
        if playing.get("endedAt") is not None:
            log.info("take-over: %s had ended; starting with the queue", entry_id)
            return None
        if await self.outbox.has(self._played_key(entry_id)):
            log.info("take-over: this box finished %s itself; starting with the queue", entry_id)
            return None
        raw = playing.get("position")
        position = float(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else None
        entry = ReplicaEntry(entry_id, "priority" if playing.get("queue") == "priority" else "main", playing)
        where = "its start" if position is None else f"{position:.1f}s"
        log.info("take-over: %s (%s) was cut off on %s; resuming it from %s", entry_id, playing.get("videoId"),
                 playing.get("deviceId"), where)
        self._interrupted = Interrupted(entry, position)
        self._on_queue_changed()
        return self._interrupted

    async def interrupted(self) -> Interrupted | None:
        """The entry a take-over must resume before anything else (waits for the hub's answer, if asked)."""
        task = self._takeover
        if task is not None and not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)
        return self._interrupted

    def interrupted_handled(self, entry_id: str) -> None:
        """The interrupted entry was resumed (or could not be): it is an entry like any other now."""
        if self._interrupted is not None and self._interrupted.entry.entry_id == entry_id:
            self._interrupted = None

    # --- what the player calls -------------------------------------------------------------------------

    async def next_entry(self) -> ReplicaEntry | None:
        return next_entry(await self.replica.view())

    async def upcoming(self, count: int) -> list[ReplicaEntry]:
        return upcoming(await self.replica.view(), count)

    async def started(self, entry: ReplicaEntry) -> None:
        """This box started ``entry``: never offer it again, and tell the hub (now, or after an outage)."""
        epoch = self.lease.epoch or 0
        key = f"np:{self.api.device_id}:{entry.entry_id}"
        payload = {"entryId": entry.entry_id, "song": entry.song()}

        def write(conn: sqlite3.Connection) -> None:
            self.replica.consume_in(conn, entry)
            self.outbox.put_in(conn, "now_playing", key, payload, epoch=epoch)

        def remember() -> None:  # a disk that refuses the write: the replica and the outbox keep it in memory
            self.replica.remember_consumed(entry)
            self.outbox.hold("now_playing", key, payload, epoch=epoch)

        await or_remember(self.db.write(write), remember)
        self.outbox.wake()

    async def skip(self, entry: ReplicaEntry) -> None:
        """This box cannot play ``entry`` (missing, broken): stop offering it here, tell the hub nothing."""
        await or_remember(self.db.write(lambda conn: self.replica.consume_in(conn, entry)),
                          lambda: self.replica.remember_consumed(entry))

    async def finished(self, entry: ReplicaEntry, played_at_ms: int | None = None) -> None:
        """``entry`` played to its end (or was skipped by staff): it belongs in the venue's history."""
        played_at = played_at_ms if played_at_ms is not None else int(self._wall() * 1000)
        payload = {"entryId": entry.entry_id, "song": entry.song(), "playedAt": played_at}
        await self.outbox.put("played", self._played_key(entry.entry_id), payload, epoch=self.lease.epoch or 0)

    def _played_key(self, entry_id: str) -> str:
        return f"played:{self.api.device_id}:{entry_id}"

    async def request_limit(self) -> float | None:
        """The longest a paid request may play (measured, trimmed): the venue's own limit, else the hub's."""
        own = (await self.replica.view()).request_limit_s
        return own if own is not None else self.api.max_request_duration

    async def refuse(self, entry: ReplicaEntry, measured_s: float) -> None:
        """A paid request whose track measured over the limit: never offered here again, and the hub is told
        (through the outbox) so it refunds the request and drops the entry for every box."""
        request_id = entry.data.get("requestId")
        payload = {"requestId": request_id, "entryId": entry.entry_id, "duration": round(measured_s, 3)}

        def write(conn: sqlite3.Connection) -> None:
            self.replica.consume_in(conn, entry)
            if request_id:
                self.outbox.put_in(conn, "over_limit", f"over-limit:{request_id}", payload)

        def remember() -> None:  # refused by the disk: kept in memory
            self.replica.remember_consumed(entry)
            if request_id:
                self.outbox.hold("over_limit", f"over-limit:{request_id}", payload)

        await or_remember(self.db.write(write), remember)
        self.outbox.wake()

    async def report_analysis(self, analysis: Analysis, mode: str) -> None:
        """An analysis result for the shared catalog (every venue benefits)."""
        key = f"analysis:{analysis.video_id}:{mode}:{self.api.device_id}"
        payload = {
            "video_id": analysis.video_id,
            "duration": analysis.duration,
            "real_start_offset": analysis.real_start_offset,
            "real_end_offset": analysis.real_end_offset,
            "loudness": analysis.loudness,
        }
        await self.outbox.put("analysis", key, payload)

    async def report_details(self, video_id: str, details: SongDetails) -> None:
        """What a song this box fetched is (yt-dlp's artist and title, the measured length), for the hub to fill in
        the venue's songs staff added by URL alone. Once per video, box and day (the outbox key: a report a hub
        refused, one without the endpoint yet, is not refused forever); the hub ignores it where nothing is pending.
        Without a length (nothing measured it) there is nothing to send: the hub needs one."""
        if details.duration is None:
            return
        payload = {"videoId": video_id, "title": details.title, "artist": details.artist,
                   "duration": details.duration}
        day = int(self._wall() * 1000) // DAY_MS
        await self.outbox.put("details", f"details:{video_id}:{self.api.device_id}:{day}", payload)

    async def report_error(self, source: str, message: str) -> None:
        """A track this box could not play (gone, broken, failed in the player), for the venue's staff: through
        the outbox, so it reaches the hub after an outage; stored there once however often it is resent.
        The same failure again within the hour (a broken playlist track comes round again) is not news: its
        key repeats, so the outbox and the hub keep the first report only."""
        at_ms = int(self._wall() * 1000)
        video_id = source if is_video_id(source) or is_media_url(source) else None  # a local path means nothing there
        text = ((message or "failed") if video_id else f"{source}: {message or 'failed'}")[:MAX_ERROR_MESSAGE]
        payload = {"videoId": video_id, "message": text, "at": at_ms}
        failure = hashlib.sha256(f"{source}\n{text}".encode()).hexdigest()[:32]
        key = f"error:{failure}:{at_ms // ERROR_REPEAT_WINDOW_MS}"
        try:
            await self.outbox.put("device_error", key, payload)
        except Exception as exc:  # the disk refused it (the trouble may be that very disk): the outbox holds it
            if not is_storage_error(exc):
                raise

    # --- outbox delivery -----------------------------------------------------------------------------

    async def _deliver(self, item: OutboxItem) -> None:
        p = item.payload
        song = _hub_song(p.get("song"))
        if item.kind == "now_playing":
            await self.api.now_playing(self._confirmed_epoch(), p["entryId"], song, item.key)
        elif item.kind == "over_limit":
            await self.api.report_over_limit(self._confirmed_epoch(), str(p["requestId"]), float(p["duration"]))
        elif item.kind == "played":
            await self.api.played(item.epoch or 0, p["entryId"], song, int(p["playedAt"]), item.key)
        elif item.kind == "analysis":
            await self.api.report_analysis(Analysis(**p))
        elif item.kind == "details":
            await self.api.report_details(str(p["videoId"]), str(p["title"]), str(p["artist"]), float(p["duration"]))
        elif item.kind == "device_error":
            await self.api.report_error(p["videoId"], p["message"], p["at"], item.key)
        else:
            raise HubRefused(400, f"unknown outbox kind {item.kind!r}")

    def _confirmed_epoch(self) -> int:
        """The epoch a master write goes with: the *current* one. What this box did while offline is applied
        once it is confirmed master again; if another box holds the lease now, it is not ours to apply."""
        if self.lease.role is L.Role.MASTER and self.lease.epoch is not None:
            return self.lease.epoch
        if self.lease.role is L.Role.STANDBY and self.lease.hub_ok:
            raise HubRefused(409, "superseded: another box took the lease before this was sent")
        raise HubUnavailable("waiting for the lease to be confirmed")

    def _on_refused(self, item: OutboxItem, exc: HubRefused) -> None:
        if isinstance(exc, StaleEpoch) and item.kind == "now_playing":
            self.handle(L.Fenced(exc.current_epoch))


def _hub_song(song: Any) -> dict[str, Any] | None:
    """The song as the hub accepts it, or None (the hub then goes by entry id): a local file path is
    playable on this box but means nothing to the hub or another venue."""
    if not isinstance(song, dict):
        return None
    source = str(song.get("videoId"))
    return song if is_video_id(source) or is_media_url(source) else None
