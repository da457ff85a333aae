"""The playback engine: keeps the player fed from the queue, records what plays, survives restarts.

One task (``run``) handles everything in order from one inbox: player events (started,
ended, failed) and wake-ups (the queue changed, a control, the idle re-check). After each
it asks the queue source for what should come next and hands the player the next
``lookahead`` entries, resolved to files and cue offsets, so the player can go from one to
the next without a gap. A second task saves the position every few seconds; after a crash
``start()`` resumes the interrupted play from the saved position, in the same history row (unless
it keeps dying right where it resumes: ``MAX_RESUMES_WITHOUT_PROGRESS``).

What happened is recorded (history, position, the queue source's own record) through ``_record``: a write the
disk refuses (full, read-only) is left out and the music goes on; the database's watch reports the trouble
(edge/disk_trouble.py) and the state and queue sources remember in memory what they could not write.

A missing or broken track costs one log line: it is reported to the queue source as
failed (the local queue marks it unplayable) and the next one plays. With nothing
playable the engine is idle and looks again every ``idle_recheck_s`` or when the queue
changes; it never spins.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from djamms_edge.edge.player.api import Ended, EndReason, Failed, PlaybackItem, Player, PlayerEvent, Started
from djamms_edge.edge.player.config import PlayerConfig
from djamms_edge.edge.player.resolver import Cue, TrackResolver, Unplayable
from djamms_edge.edge.queue.model import EntryKind, QueueEntry
from djamms_edge.edge.queue.source import Outcome, QueueSource
from djamms_edge.edge.state import Controls, InProgress, PlaybackState
from djamms_edge.shared.sqlite import is_storage_error

log = logging.getLogger(__name__)

# A play saved this close to its end offset is over: resuming would play a second of tail.
RESUME_TAIL_SECONDS = 1.0
# Each failed resolution marks an entry unplayable and re-plans; this bounds one refill.
MAX_REPLANS = 25
# How far down the queue planning looks for entries whose download is not waited for.
MAX_SCAN = 100
# Files are checked (analysed) before the player sees them, so a run of tracks the player itself cannot
# play points at the player (audio device gone, libmpv wedged), not at the files: the engine gives up and
# the daemon exits, so systemd restarts it with a fresh player.
MAX_PLAYER_FAILURES_IN_A_ROW = 5
# A play resumed this many times, dying each time before it got any further, is given up rather than resumed
# again: a file that crashes libmpv (in this process) at one spot would otherwise take the daemon down after
# every restart, and the venue would hear nothing until someone came. A paused play makes no progress either,
# and is kept.
MAX_RESUMES_WITHOUT_PROGRESS = 2


class PlayerBroken(RuntimeError):
    """The player failed too many tracks in a row to blame the tracks."""


class EngineState(StrEnum):
    PLAYING = "playing"
    PAUSED = "paused"
    IDLE = "idle"  # nothing playable right now
    HALTED = "halted"  # told not to play (a standby box)


@dataclass(frozen=True, slots=True)
class PlayRef:
    """One play of a queue entry: the entry, the item handed to the player, and whether it resumes a play."""

    entry: QueueEntry
    item: PlaybackItem
    resume: bool = False
    cue_in: float | None = None  # where the track's sound starts, when the item starts elsewhere (a resume)

    @property
    def play_id(self) -> str:
        return self.item.play_id

    @property
    def real_start(self) -> float:
        return self.item.start if self.cue_in is None else self.cue_in


@dataclass(frozen=True, slots=True)
class NowPlaying:
    play_id: str
    entry: QueueEntry
    position: float | None  # seconds of media time
    start: float  # the cue-in (where the sound starts), also after a resume mid-track
    end: float | None  # cue-out


@dataclass(frozen=True, slots=True)
class EngineStatus:
    state: EngineState
    now_playing: NowPlaying | None
    upcoming: tuple[QueueEntry, ...]  # handed to the player already
    volume: float


def describe(entry: QueueEntry) -> str:
    name = " - ".join(part for part in (entry.artist, entry.title) if part) or entry.source
    return f"{name!r} ({entry.kind.value} {entry.entry_id})"


class PlaybackEngine:
    def __init__(
        self, player: Player, queue: QueueSource, resolver: TrackResolver, state: PlaybackState,
        config: PlayerConfig, clock: Callable[[], float] = time.time, *, active: bool = True,
    ) -> None:
        self.player = player
        self._queue = queue
        self._resolver = resolver
        self._state = state
        self._config = config
        self._clock = clock
        self._inbox: asyncio.Queue[PlayerEvent | None] = asyncio.Queue()  # None = look at the queue again
        self._refs: dict[str, PlayRef] = {}  # every play handed over and not known to be dead
        self._current: PlayRef | None = None
        self._handed: list[PlayRef] = []
        self._resuming: PlayRef | None = None
        self._active = active  # False: start halted (a box that must first win the hub's lease)
        self._idle = False
        # Source -> clock time to look at it again. Keyed by source, not entry: "not downloaded yet" is true of
        # every entry of that video (a rotation repeats them under new ids), and is logged once per source.
        self._not_ready: dict[str, float] = {}
        self._gave_up = False  # the last plan gave up: its error is logged once, not on every re-plan
        self._last_saved: tuple[str, float] | None = None
        self._failures_in_a_row = 0
        self._listeners: list[Callable[[], None]] = []
        queue.subscribe(self.wake)

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the player, pick up a play a crash interrupted, and hand over what plays first."""
        await self.player.open(self._inbox.put_nowait)
        await self._restore_controls()
        await self._restore()
        await self._refill()

    async def run(self) -> None:
        """The engine's one task: handle each event and wake-up in order."""
        while True:
            try:
                message = await asyncio.wait_for(self._inbox.get(), self._recheck_in())
            except TimeoutError:
                message = None
            if message is not None:
                await self._handle(message)
            await self._refill()

    def _recheck_in(self) -> float | None:
        """How long to wait for news before planning again: entries passed over come due, or idle re-checks."""
        now = self._clock()
        waits = [until - now for until in self._not_ready.values() if until > now]
        if self._idle:
            waits.append(self._config.idle_recheck_s)
        return max(0.05, min(waits)) if waits else None

    async def save_positions(self) -> None:
        """The position saver's task: now-playing position to SQLite every ``position_save_s``."""
        while True:
            await asyncio.sleep(self._config.position_save_s)
            await self.save_position()

    async def save_position(self) -> None:
        ref, position = self._current, self.player.position()
        if ref is None or position is None:
            return
        # Paused, nothing moved: skip the write (an SD card on a venue box lives longer for it).
        if (ref.play_id, round(position, 1)) != self._last_saved:
            await _record(self._state.save_position(ref.play_id, position, self._clock()))
            self._last_saved = (ref.play_id, round(position, 1))

    async def close(self) -> None:
        """Save where we are (a restart resumes there) and release the player."""
        await self.save_position()
        await self.player.close()

    # --- controls ---------------------------------------------------------------------------------

    async def skip(self) -> None:
        if self._current is not None:
            log.info("skipping %s on request", describe(self._current.entry))
            await self.player.skip(self._config.skip_fade_s)

    async def pause(self) -> None:
        self.player.pause()
        await self._controls_changed()

    async def resume(self) -> None:
        self.player.resume()
        await self._controls_changed()

    async def set_volume(self, percent: float) -> None:
        self.player.set_volume(percent)
        await self._controls_changed()

    async def _controls_changed(self) -> None:
        self._changed()
        # Kept, so a crash or power cut neither blasts a box staff turned down nor restarts one they paused.
        await _record(self._state.save_controls(Controls(self.player.volume, self.player.paused), self._clock()))

    def set_active(self, active: bool) -> None:
        """False: stop at once and play nothing (a standby, or a master that lost its lease). True: play."""
        if active == self._active:
            if not active:
                self._resuming = None  # started halted and stays so (a standby): never resume that play later
            return
        self._active = active
        log.info("playback %s", "enabled" if active else "halted")
        if not active:
            self._handed = []
            self._resuming = None
            self.player.stop()
        self.wake()

    def wake(self) -> None:
        """Look at the queue again soon (it changed, or a control wants it)."""
        self._inbox.put_nowait(None)

    def media_ready(self) -> None:
        """Media changed state (a download finished, or failed for good): re-resolve the entries passed over
        now, not when their retry comes due, so a paid request downloaded in time is handed over in time."""
        self._not_ready = dict.fromkeys(self._not_ready, 0.0)  # keys kept: "passing over" is logged once
        self.wake()

    def subscribe(self, on_change: Callable[[], None]) -> None:
        """``on_change`` is called (on the loop's thread) when anything ``status()`` shows changes."""
        self._listeners.append(on_change)

    def status(self) -> EngineStatus:
        now_playing = None
        if self._current is not None:
            item = self._current.item
            now_playing = NowPlaying(item.play_id, self._current.entry, self.player.position(),
                                     self._current.real_start, item.end)
        if not self._active:
            state = EngineState.HALTED
        elif now_playing is None:
            state = EngineState.IDLE
        else:
            state = EngineState.PAUSED if self.player.paused else EngineState.PLAYING
        return EngineStatus(state, now_playing, tuple(r.entry for r in self._handed), self.player.volume)

    # --- events ------------------------------------------------------------------------------------

    async def _handle(self, event: PlayerEvent) -> None:
        if isinstance(event, Started):
            await self._on_started(event.play_id)
        elif isinstance(event, Ended):
            await self._on_ended(event.play_id, event.reason)
        elif isinstance(event, Failed):
            await self._on_failed(event.play_id, event.message)
        self._changed()

    async def _on_started(self, play_id: str) -> None:
        ref = self._refs.get(play_id)
        if ref is None:
            log.warning("player started an unknown play %s", play_id)
            return
        self._current = ref
        self._failures_in_a_row = 0
        self._handed = [r for r in self._handed if r.play_id != play_id]
        # Anything handed before this one and not started by now never will be.
        self._refs = {r.play_id: r for r in (ref, *self._handed)}
        now = self._clock()
        if ref.resume:
            self._resuming = None
            await _record(self._state.resume(play_id, now, ref.item.start))
        else:
            await _record(self._state.begin(play_id, ref.entry, now, ref.item.start))
        await _record(self._queue.started(ref.entry))
        log.info("playing %s from %.1fs%s", describe(ref.entry), ref.item.start, " (resumed)" if ref.resume else "")

    async def _on_ended(self, play_id: str, reason: EndReason) -> None:
        ref = await self._end(play_id, reason.value)
        if ref is None or reason is EndReason.STOPPED:
            return  # STOPPED: cut off, not played; the queue source decides what that means for the entry
        await _record(self._queue.finished(ref.entry, Outcome.PLAYED if reason is EndReason.FINISHED
                                           else Outcome.SKIPPED))

    async def _on_failed(self, play_id: str, message: str) -> None:
        ref = await self._end(play_id, "failed")
        if ref is None:
            return
        self._failures_in_a_row += 1
        if self._failures_in_a_row >= MAX_PLAYER_FAILURES_IN_A_ROW:
            raise PlayerBroken(f"the player failed {self._failures_in_a_row} tracks in a row (last: {message})")
        log.warning("skipping %s: %s", describe(ref.entry), message)
        await _record(self._queue.finished(ref.entry, Outcome.FAILED, message))

    async def _end(self, play_id: str, reason: str) -> PlayRef | None:
        """Forget a play; if it had a history row (it started, or it is a resume), close that row."""
        ref = self._refs.pop(play_id, None)
        if ref is None:
            return None
        recorded = ref is self._current or ref.resume
        if ref is self._current:
            self._current = None
        if ref is self._resuming:
            self._resuming = None
        self._handed = [r for r in self._handed if r is not ref]
        if recorded:
            await _record(self._state.end(play_id, reason, self._clock()))
        return ref

    # --- planning ------------------------------------------------------------------------------------

    async def _restore_controls(self) -> None:
        controls = await self._state.controls()
        if controls is None:
            return  # never set on this box: the configured volume stands
        self.player.set_volume(controls.volume)
        if controls.paused:
            self.player.pause()
        left = ", paused as they left it" if controls.paused else ""
        log.info("volume %g%% as staff last set it%s", controls.volume, left)

    async def _restore(self) -> None:
        progress = await self._state.in_progress()
        if progress is None:
            return
        play, entry = progress.play, progress.play.entry
        if self._dies_where_it_resumes(progress):
            reason = (f"the daemon stopped {play.resumes + 1} times while playing it, the last {play.resumes} "
                      "right after resuming it: given up, it may be what crashes the player")
            log.error("not resuming %s: %s", describe(entry), reason)
            await _record(self._state.end(play.play_id, "failed", self._clock()))
            await _record(self._queue.finished(entry, Outcome.FAILED, reason))
            return
        try:
            cue = await self._resolver.resolve(entry)
        except Unplayable as exc:
            log.warning("cannot resume %s: %s", describe(entry), exc)
            await _record(self._state.end(play.play_id, "failed", self._clock()))
            await _record(self._queue.finished(entry, Outcome.FAILED, str(exc)))
            return
        position = max(cue.start, progress.position)
        if cue.end is not None and position >= cue.end - RESUME_TAIL_SECONDS:
            log.info("%s had ended before the restart", describe(entry))
            await _record(self._state.end(play.play_id, EndReason.FINISHED.value, self._clock()))
            await _record(self._queue.finished(entry, Outcome.PLAYED))
            return
        await _record(self._queue.started(entry))  # idempotent: makes sure a paid request is not offered again
        # Resumed mid-track; the status page still measures progress from the cue-in.
        self._resuming = replace(self._ref(entry, replace(cue, start=position), play.play_id, resume=True),
                                 cue_in=cue.start)
        log.info("resuming %s at %.1fs (position saved %.0fs before the restart)", describe(entry), position,
                 max(0.0, self._clock() - progress.saved_at))

    def _dies_where_it_resumes(self, progress: InProgress) -> bool:
        """Resumed ``MAX_RESUMES_WITHOUT_PROGRESS`` times, and stopped again before a position a few saves
        past the last resume point was saved (a crash at one spot of the file, or while opening it)."""
        play = progress.play
        if play.resumes < MAX_RESUMES_WITHOUT_PROGRESS or play.resumed_from is None or self.player.paused:
            return False
        return progress.position - play.resumed_from < 2 * self._config.position_save_s + 1.0

    async def _refill(self) -> None:
        """Hand the player what should follow the current play (replacing what changed)."""
        if not self._active:
            return
        prefix = [self._resuming] if self._resuming is not None else []
        count = self._config.lookahead + (0 if self._current is not None else 1) - len(prefix)
        if self._current is None and not prefix and not self._handed and count > 1:
            # Silence: start the first playable entry as soon as it is resolved; a take-over or a start
            # does not wait for the analysis of the entries after it.
            self._hand(await self._plan(1, reusable=[]))
        self._hand(prefix + await self._plan(count, reusable=self._handed[len(prefix):]))
        self._set_idle(self._current is None and not self._handed)

    def _hand(self, handed: list[PlayRef]) -> None:
        if [r.item for r in handed] != [r.item for r in self._handed]:
            self._handed = handed
            self._refs.update((r.play_id, r) for r in handed)
            self.player.set_upcoming([r.item for r in handed])

    async def _plan(self, count: int, reusable: list[PlayRef]) -> list[PlayRef]:
        """The next ``count`` plays, resolved; entries already handed over keep their play id."""
        for _ in range(MAX_REPLANS):
            now = self._clock()
            waiting = {k for k, until in self._not_ready.items() if until > now}
            planned: list[PlayRef] = []
            entries = await self._candidates(count, waiting)
            for entry in entries:
                try:
                    cue = await self._resolver.resolve(entry)
                except Unplayable as exc:
                    await self._unplayable(entry, exc)
                    break
                measured = await self._over_limit(entry, cue)
                if measured is not None:
                    await _record(self._queue.refused(entry, measured))
                    break
                if self._not_ready.pop(entry.source, None) is not None:
                    log.info("%s is ready now", describe(entry))
                index = len(planned)
                same = index < len(reusable) and reusable[index].entry == entry
                planned.append(self._ref(entry, cue, reusable[index].play_id if same else uuid.uuid4().hex))
            else:
                self._gave_up = False
                return planned
        if not self._gave_up:
            log.error("gave up planning after %d unplayable entries in a row", MAX_REPLANS)
            self._gave_up = True
        return []

    async def _over_limit(self, entry: QueueEntry, cue: Cue) -> float | None:
        """The measured (trimmed) length of a paid request that must not play because it is over the limit.

        Once fetched, the file's length counts, never the duration the request declared. A play that
        another box already started (a take-over resumes it) is finished, not judged again."""
        if entry.kind is not EntryKind.PRIORITY or entry.resume_at is not None or cue.end is None:
            return None
        limit = await self._queue.request_limit()
        measured = cue.end - cue.start
        return measured if limit is not None and measured > limit else None

    async def _candidates(self, count: int, waiting: set[str]) -> list[QueueEntry]:
        """The next ``count`` upcoming entries whose source is not waiting for its download; the window widens
        past waiting ones (a source may be queued many times) up to ``MAX_SCAN`` entries. The entry playing
        or being resumed here is not planned a second time (a take-over may offer it too)."""
        wanted = count + len(waiting)
        busy = {r.entry.entry_id for r in (self._current, self._resuming) if r is not None}
        while count > 0:
            upcoming = await self._queue.upcoming(wanted)
            entries = [e for e in upcoming if e.source not in waiting and e.entry_id not in busy]
            if len(entries) >= count or len(upcoming) < wanted or wanted >= MAX_SCAN:
                return entries[:count]
            wanted = min(MAX_SCAN, wanted * 2)
        return []

    async def _unplayable(self, entry: QueueEntry, exc: Unplayable) -> None:
        if exc.retry_after is None:
            log.warning("skipping %s: %s", describe(entry), exc)
            await _record(self._queue.finished(entry, Outcome.FAILED, str(exc)))
        else:  # one line when it is first passed over, not one per retry
            if entry.source not in self._not_ready:
                log.info("passing over %s for now: %s", describe(entry), exc)
            self._not_ready[entry.source] = self._clock() + exc.retry_after

    @staticmethod
    def _ref(entry: QueueEntry, cue: Cue, play_id: str, resume: bool = False) -> PlayRef:
        if entry.resume_at is None or entry.resume_at <= cue.start:
            return PlayRef(entry, PlaybackItem(play_id, cue.path, cue.start, cue.end, cue.gain_db), resume)
        # A take-over: on from where the last box got to (at most to the last second, so it still ends and
        # is recorded as played); progress still counts from the cue-in.
        start = entry.resume_at
        if cue.end is not None:
            start = min(start, max(cue.start, cue.end - RESUME_TAIL_SECONDS))
        item = PlaybackItem(play_id, cue.path, start, cue.end, cue.gain_db)
        return PlayRef(entry, item, resume, cue_in=cue.start)

    def _set_idle(self, idle: bool) -> None:
        if idle != self._idle:
            log.info("nothing playable: idle" if idle else "playable tracks again")
            self._idle = idle
            self._changed()

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()


async def _record(write: Awaitable[None]) -> None:
    """Await a write of what happened; one the disk refuses (full, read-only) is left out, and the music goes on.
    The database's watch reports it once (edge/disk_trouble.py); any other error is a bug and propagates."""
    try:
        await write
    except Exception as exc:
        if not is_storage_error(exc):
            raise
