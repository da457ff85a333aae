"""Config of the edge ↔ hub link: ``[edge.sync]`` and ``[edge.night_analysis]``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from djamms_edge.shared.config_schema import at_least, between, setting

if TYPE_CHECKING:
    from djamms_edge.edge.sync.lease import LeaseTiming

_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _clock_check(value: str) -> str | None:
    return None if _CLOCK.match(value) else "expected local time as HH:MM (24 h)"


@dataclass(frozen=True)
class SyncConfig:
    # 5 s beats against a hub that declares a master stale after 20 s (hub.registry.stale_after_s) means a
    # dead box is replaced in <= 25 s and a Wi-Fi hiccup of up to three beats costs nothing. The reference's
    # 30 s / 120 s meant two minutes of silence in a full bar. Each beat is one tiny request.
    heartbeat_interval_s: float = setting(
        5.0, doc="master heartbeat and standby register retry interval", check=between(0.1, 60.0)
    )
    retry_min_s: float = setting(1.0, doc="first retry after the hub did not answer", check=between(0.05, 60.0))
    retry_max_s: float = setting(
        10.0, doc="backoff cap; an offline master learns the hub is back within this", check=between(0.1, 600.0)
    )
    request_timeout_s: float = setting(
        4.0, doc="a hub request taking longer counts as unreachable", check=at_least(0.1)
    )
    poll_interval_s: float = setting(
        10.0, doc="with the change feed's WebSocket down, poll for changes this often", check=between(0.1, 600.0)
    )
    keep_delivered: int = setting(1000, doc="delivered outbox items kept locally for inspection", check=at_least(0))

    def lease_timing(self) -> LeaseTiming:
        # Imported here: every command reads this section, only the daemon needs the lease's rules.
        from djamms_edge.edge.sync.lease import LeaseTiming

        return LeaseTiming(
            heartbeat_interval=self.heartbeat_interval_s, retry_min=self.retry_min_s, retry_max=self.retry_max_s
        )


@dataclass(frozen=True)
class NightAnalysisConfig:
    enabled: bool = setting(True, doc="analyse cached tracks lacking offsets or loudness in the idle window")
    window_start: str = setting("02:00", doc="local time the idle window opens (HH:MM)", check=_clock_check)
    window_end: str = setting("06:00", doc="local time it closes; may be past midnight", check=_clock_check)
    only_when_idle: bool = setting(
        True, doc="analyse only while nothing plays; false = also while playing, at the lowest CPU/IO priority"
    )
    pause_s: float = setting(1.0, doc="breather between two tracks", check=between(0.0, 600.0))
