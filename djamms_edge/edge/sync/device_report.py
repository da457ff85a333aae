"""What this box tells the hub about itself with each register and heartbeat, for the venue's dashboard:
its software version, what it plays and how far in, and what ``djamms-edge doctor`` found wrong.

The hub client calls the reporter for every register/heartbeat body; the daemon attaches the engine once
it exists and the doctor's problems once it has them (until then the report says what it knows).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from djamms_edge import __version__
from djamms_edge.edge.sync.hub_api import Json

if TYPE_CHECKING:
    from djamms_edge.edge.player.engine import PlaybackEngine

MAX_PROBLEMS = 20  # the hub's limits
MAX_PROBLEM_CHARS = 300


class DeviceReporter:
    def __init__(self) -> None:
        self.engine: PlaybackEngine | None = None
        self.problems: Callable[[], list[str]] = list  # the doctor's findings (edge/doctor.py Report.problems)

    def __call__(self) -> Json:
        problems = [p[:MAX_PROBLEM_CHARS] for p in self.problems()[:MAX_PROBLEMS]]
        return {"version": __version__, "problems": problems, "nowPlaying": self._now_playing()}

    def _now_playing(self) -> Json | None:
        playing = self.engine.status().now_playing if self.engine is not None else None
        if playing is None:
            return None
        entry = playing.entry
        body: Json = {"entryId": entry.entry_id, "videoId": entry.source[:300], "title": entry.title[:300],
                      "artist": entry.artist[:300], "position": playing.position,
                      "duration": playing.end if playing.end is not None else entry.duration}
        return {k: v for k, v in body.items() if v not in (None, "")}
