"""``[edge.queue]``: the local playlist and the rotation rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from djamms_edge.shared.config_schema import at_least, setting

if TYPE_CHECKING:
    from djamms_edge.edge.queue.rotation import RotationRules


@dataclass(frozen=True)
class QueueConfig:
    playlist: str = setting(
        "", doc="local playlist: a directory of media files or a text file of paths/URLs (one a line); "
        "played when no hub is configured"
    )
    repeat_window_s: float = setting(
        3600.0, doc="a main-queue track does not repeat within this many seconds (unless the playlist is too short)",
        check=at_least(0.0),
    )
    artist_separation: int = setting(
        2, doc="an artist is not played again within this many tracks, when the playlist allows", check=at_least(0)
    )
    retry_unplayable_s: float = setting(
        600.0, doc="a missing or broken track is tried again after this many seconds", check=at_least(1.0)
    )

    def rules(self) -> RotationRules:
        # Imported here: every command reads this section, only the daemon plays a queue.
        from djamms_edge.edge.queue.rotation import RotationRules

        return RotationRules(repeat_window_s=self.repeat_window_s, artist_separation=self.artist_separation)
