"""A ``StatusSource`` with state set by hand, for tests and page development.

Controls act on the fake's own state the way the daemon's would (pause marks
now-playing paused, skip moves to the next queued entry), so a test can watch the
page react to a control without a player behind it.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from djamms_edge.edge.status.model import (
    AnalysisProgress,
    CacheUse,
    ChangeCounter,
    ControlRefused,
    HubLink,
    NowPlaying,
    QueueItem,
    RecentError,
    StatusSnapshot,
)


def sample_snapshot(now: float) -> StatusSnapshot:
    """A plausible master mid-song; tests change the parts they care about."""
    return StatusSnapshot(
        version=0,
        role="master",
        hub=HubLink(connected=True, since=now - 3600),
        now_playing=NowPlaying(
            entry_id="e-1",
            title="First Song",
            artist="The Testers",
            source_key="dQw4w9WgXcQ",
            position=42.0,
            position_at=now,
            real_start=1.5,
            real_end=200.25,
            duration=203.0,
            paused=False,
        ),
        priority_queue=(QueueItem("p-1", "Paid Request", "Somebody", "aaaaaaaaaaa", requested_by="patron-7"),),
        main_queue=(
            QueueItem("m-1", "Next Up", "Band B", "bbbbbbbbbbb"),
            QueueItem("m-2", "After That", "Band C", "ccccccccccc"),
        ),
        cache=CacheUse(bytes_used=1_500_000_000, bytes_cap=8_000_000_000, files=120),
        analysis=AnalysisProgress(done=30, total=120, running=False),
        recent_errors=(RecentError(at=now - 60, message="track zzzzzzzzzzz: file is corrupt, skipped"),),
        errors_total=1,
        volume=80.0,
        venue_id="venue-1",
        device_id="box-1",
        software_version="0.1.0",
    )


class FakeStatusSource:
    def __init__(self, snapshot: StatusSnapshot | None = None) -> None:
        self._changes = ChangeCounter()
        self._state = snapshot if snapshot is not None else sample_snapshot(time.time())
        self.calls: list[tuple[str, Any]] = []
        self.refuse_controls: str | None = None  # a message makes every control raise ControlRefused

    # --- StatusSource ------------------------------------------------------

    def snapshot(self) -> StatusSnapshot:
        return dataclasses.replace(self._state, version=self._changes.version)

    async def wait_changed(self, after: int) -> int:
        return await self._changes.wait(after)

    async def skip(self) -> None:
        self._control("skip")
        queue = self._state.priority_queue or self._state.main_queue
        if not queue:
            self.update(now_playing=None)
            return
        following, *rest = queue
        playing = self._state.now_playing
        now_playing = NowPlaying(
            entry_id=following.entry_id,
            title=following.title,
            artist=following.artist,
            source_key=following.source_key,
            position=playing.real_start if playing else 0.0,
            position_at=time.time(),
            real_start=playing.real_start if playing else 0.0,
            real_end=playing.real_end if playing else 180.0,
            duration=playing.duration if playing else 180.0,
            paused=False,
        )
        which = "priority_queue" if self._state.priority_queue else "main_queue"
        self.update(now_playing=now_playing, **{which: tuple(rest)})

    async def pause(self) -> None:
        self._control("pause")
        self._set_paused(True)

    async def resume(self) -> None:
        self._control("resume")
        self._set_paused(False)

    async def set_volume(self, volume: float) -> None:
        self._control("volume", volume)
        self.update(volume=volume)

    # --- for tests -----------------------------------------------------------

    def update(self, **changes: Any) -> None:
        """Replace top-level snapshot fields and tell live viewers."""
        self._state = dataclasses.replace(self._state, **changes)
        self._changes.bump()

    def play(self, title: str, artist: str = "", entry_id: str = "", position: float = 0.0) -> None:
        """Switch now-playing to a new track, keeping the current offsets."""
        current = self._state.now_playing
        assert current is not None, "play() needs a now-playing entry to copy offsets from"
        self.update(
            now_playing=dataclasses.replace(
                current,
                entry_id=entry_id or f"e-{self._changes.version + 1}",
                title=title,
                artist=artist,
                position=position,
                position_at=time.time(),
                paused=False,
            )
        )

    def _control(self, name: str, argument: Any = None) -> None:
        if self.refuse_controls is not None:
            raise ControlRefused(self.refuse_controls)
        self.calls.append((name, argument))

    def _set_paused(self, paused: bool) -> None:
        playing = self._state.now_playing
        if playing is None:
            raise ControlRefused("nothing is playing")
        now = time.time()
        position = playing.position_when(now)
        self.update(now_playing=dataclasses.replace(playing, paused=paused, position=position, position_at=now))
