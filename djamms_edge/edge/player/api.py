"""The player boundary in domain terms: what to play, and what happened.

The engine speaks only this. ``mpv_player`` implements it with libmpv and ``fake``
with a hand-driven clock; one contract suite (tests/edge/player/test_contract.py)
runs against both so the fake cannot drift from the real thing.

Event rules both implementations keep:
* every item handed to the player that starts produces ``Started`` exactly once;
* every started item then produces exactly one ``Ended`` or ``Failed``;
* an item that cannot be opened produces ``Failed`` without ``Started``;
* items removed from the upcoming list before they started produce nothing.
Events are delivered on the event loop's thread through the ``on_event`` callback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from djamms_edge.edge.player.request_qr import QrPlacement, RequestQr


@dataclass(frozen=True, slots=True)
class PlaybackItem:
    """One file to play from ``start`` to ``end`` (seconds of media time; None = to the end) at ``gain_db``.

    ``play_id`` names this one play of a queue entry (the same track may be queued twice); events carry it.
    """

    play_id: str
    path: Path
    start: float = 0.0
    end: float | None = None
    gain_db: float = 0.0


class EndReason(StrEnum):
    FINISHED = "finished"  # reached its end offset (or the end of the file)
    SKIPPED = "skipped"  # skip() was called while it played
    STOPPED = "stopped"  # stop() or close() cut it off; it did not finish


@dataclass(frozen=True, slots=True)
class Started:
    play_id: str


@dataclass(frozen=True, slots=True)
class Ended:
    play_id: str
    reason: EndReason


@dataclass(frozen=True, slots=True)
class Failed:
    play_id: str
    message: str


PlayerEvent = Started | Ended | Failed
EventSink = Callable[[PlayerEvent], None]


class Player(Protocol):
    async def open(self, on_event: EventSink) -> None:
        """Get ready to play; events from now on go to ``on_event`` (called on the loop's thread)."""
        ...

    async def close(self) -> None:
        """Stop playing and release everything. Safe to call twice."""
        ...

    def set_upcoming(self, items: Sequence[PlaybackItem]) -> None:
        """Replace what plays after the current item with ``items`` (in order).

        Items already handed over keep their place if they are still in ``items`` in the same order, so a
        player that has started opening the next file is not disturbed. An item that is already playing is
        left playing, not queued again (the caller may not have heard of its start yet). With nothing
        playing, the first item starts at once. Handing the next item over before the current one ends is
        what makes transitions gapless.
        """
        ...

    async def skip(self, fade_seconds: float) -> None:
        """Fade the current item out over ``fade_seconds``, then go on to the next (or stop if there is none)."""
        ...

    def stop(self) -> None:
        """Stop at once and forget the upcoming items (the current one ends ``STOPPED``)."""
        ...

    def show_request_qr(self, qr: RequestQr | None) -> None:
        """Show the venue's request QR code from now on (None: never): large while nothing plays, in the corner
        for the first ``qr.song_start_s`` of each song (see request_qr)."""
        ...

    @property
    def request_qr(self) -> QrPlacement | None:
        """Where the request QR code is on the screen now, or None."""
        ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    @property
    def paused(self) -> bool: ...

    def set_volume(self, percent: float) -> None:
        """Master volume, 0..100 (per-track gain is separate and comes with each item)."""
        ...

    @property
    def volume(self) -> float: ...

    def position(self) -> float | None:
        """Seconds of media time into the current item's file, or None when nothing plays."""
        ...

    async def probe(self) -> None:
        """Return once the player has answered a question (the watchdog's health check times it out)."""
        ...

    def show_message(self, text: str) -> None:
        """Show ``text`` on the screen until replaced ("" clears it), e.g. a new box's pairing code."""
        ...
