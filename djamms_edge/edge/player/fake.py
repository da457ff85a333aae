"""A ``Player`` with a hand-driven clock, for tests of the engine and anything above it.

It knows the media it can play as a mapping path -> duration; any other path fails to
open, like a missing or corrupt file does in mpv. Time passes only when the test calls
``advance()``. Events are delivered with ``loop.call_soon`` (never from inside the call
that caused them), as the real player delivers them from its own thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path

from djamms_edge.edge.player.api import Ended, EndReason, EventSink, Failed, PlaybackItem, PlayerEvent, Started
from djamms_edge.edge.player.request_qr import QrPlacement, RequestQr


class FakePlayer:
    def __init__(self, media: Mapping[Path, float], volume: float = 100.0) -> None:
        self.media = dict(media)
        self._on_event: EventSink | None = None
        self._upcoming: list[PlaybackItem] = []
        self._current: PlaybackItem | None = None
        self._position = 0.0
        self._started_at = 0.0  # the current item's position when it started (the corner QR counts from it)
        self._qr: RequestQr | None = None
        self._paused = False
        self._volume = volume
        self.fades: list[float] = []  # the fade length of every skip, for tests
        self.closed = False
        self.message = ""  # what show_message put on the screen
        self.answering = asyncio.Event()  # clear it for a player that stops answering
        self.answering.set()

    async def open(self, on_event: EventSink) -> None:
        self._on_event = on_event

    async def close(self) -> None:
        if not self.closed:
            self.stop()
            self.closed = True

    # --- the test's clock -------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of playback happen (nothing moves while paused)."""
        while seconds > 0 and self._current is not None and not self._paused:
            end = self._end_of(self._current)
            remaining = end - self._position
            if remaining > seconds:
                self._position += seconds
                return
            seconds -= remaining
            self._finish(EndReason.FINISHED)

    @property
    def current(self) -> PlaybackItem | None:
        return self._current

    @property
    def upcoming(self) -> tuple[PlaybackItem, ...]:
        return tuple(self._upcoming)

    def _end_of(self, item: PlaybackItem) -> float:
        duration = self.media[item.path]
        return duration if item.end is None else min(item.end, duration)

    def _finish(self, reason: EndReason) -> None:
        assert self._current is not None
        self._emit(Ended(self._current.play_id, reason))
        self._current = None
        self._start_next()

    def _start_next(self) -> None:
        while self._upcoming and self._current is None:
            item = self._upcoming.pop(0)
            if item.path not in self.media:
                self._emit(Failed(item.play_id, "loading failed"))
                continue
            self._current, self._position = item, min(item.start, self._end_of(item))
            self._started_at = self._position
            self._emit(Started(item.play_id))

    def _emit(self, event: PlayerEvent) -> None:
        assert self._on_event is not None, "open() first"
        asyncio.get_running_loop().call_soon(self._on_event, event)

    # --- Player -----------------------------------------------------------------

    def set_upcoming(self, items: Sequence[PlaybackItem]) -> None:
        playing = self._current.play_id if self._current is not None else None
        self._upcoming = [item for item in items if item.play_id != playing]
        if self._current is None:
            self._start_next()

    async def skip(self, fade_seconds: float) -> None:
        if self._current is None:
            return
        self.fades.append(fade_seconds)
        await asyncio.sleep(0)
        if self._current is not None:
            self._finish(EndReason.SKIPPED)

    def stop(self) -> None:
        self._upcoming.clear()
        if self._current is not None:
            self._emit(Ended(self._current.play_id, EndReason.STOPPED))
            self._current = None

    def show_request_qr(self, qr: RequestQr | None) -> None:
        self._qr = qr

    @property
    def request_qr(self) -> QrPlacement | None:
        if self._qr is None:
            return None
        if self._current is None:
            return QrPlacement.SCREEN
        return QrPlacement.CORNER if self._position - self._started_at < self._qr.song_start_s else None

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    def set_volume(self, percent: float) -> None:
        self._volume = max(0.0, min(100.0, percent))

    @property
    def volume(self) -> float:
        return self._volume

    def position(self) -> float | None:
        return None if self._current is None else self._position

    async def probe(self) -> None:
        await self.answering.wait()

    def show_message(self, text: str) -> None:
        self.message = text
