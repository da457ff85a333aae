"""What the edge needs from the hub, in domain terms.

``hub_client.HubClient`` implements it over HTTP (the only module that talks to
the hub); ``fake_hub.FakeHub`` implements it in memory for unit tests. One
contract suite (tests/edge/sync/test_hub_contract.py) runs against both, so the
fake keeps the real hub's rules.

Every method raises ``HubUnavailable`` when there is no usable answer and
``HubRefused`` (``StaleEpoch`` for a fenced master write) when the hub says no.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from djamms_edge.edge.sync.lease import Conflict, Granted, HeartbeatLost, HeartbeatOk

Json = dict[str, Any]


@dataclass(frozen=True)
class FeedMessage:
    """One message of the change feed: a whole ``snapshot``, one ``change``, or ``ready`` (caught up)."""

    kind: Literal["snapshot", "change", "ready"]
    version: int
    body: Json  # the snapshot's queue, or the change ({"type": ...}); empty for ready

    def as_change(self) -> Json:
        return {"version": self.version, **self.body}


MAX_ERROR_MESSAGE = 1000  # characters of a device error report the hub accepts


@dataclass(frozen=True)
class FeedBatch:
    version: int
    messages: tuple[FeedMessage, ...]
    more: bool = False


@dataclass(frozen=True)
class Analysis:
    video_id: str
    duration: float | None
    real_start_offset: float | None
    real_end_offset: float | None
    loudness: float | None


@dataclass(frozen=True)
class WhoAmI:
    """What the hub makes of this box's token: its role and subject (the device id), venue, and clock."""

    role: str
    subject: str
    venue_id: str | None
    server_time: float | None  # unix seconds from the answer's Date header; None: no usable header


@dataclass(frozen=True)
class PlayPosition:
    """Where this box's player is: ``seconds`` of media time into queue entry ``entry_id``."""

    entry_id: str
    seconds: float


@dataclass(frozen=True)
class PairingTicket:
    """The hub's answer to a box asking to be paired: a code to show, a secret to poll with."""

    code: str  # as shown: "K7P-Q4X"
    secret: str
    expires_at_ms: int
    poll_s: float


@dataclass(frozen=True)
class Paired:
    venue_id: str
    device_id: str
    device_token: str


class HubApi(Protocol):
    venue_id: str
    device_id: str
    # The hub's limit on a paid request's (measured, trimmed) length, from its last register/heartbeat
    # answer; None until one arrived. A venue's own limit comes in the feed's rules and wins.
    max_request_duration: float | None

    async def register(self) -> Granted | Conflict: ...

    async def heartbeat(self, position: PlayPosition | None = None) -> HeartbeatOk | HeartbeatLost:
        """Extend the lease; ``position`` tells the hub where the player is, so a take-over resumes there."""
        ...

    async def release(self) -> None: ...

    async def snapshot(self) -> Json: ...

    async def changes(self, since: int) -> FeedBatch: ...

    def feed(self, since: int) -> AsyncGenerator[FeedMessage, None]:
        """Push feed from ``since``: the backlog (or a snapshot), ``ready``, then live changes.

        Ends by raising HubUnavailable when the connection drops; close it with ``aclose()``."""
        ...

    async def now_playing(self, epoch: int, entry_id: str, song: Json | None, key: str) -> Json: ...

    async def played(self, epoch: int, entry_id: str, song: Json | None, played_at_ms: int, key: str) -> Json: ...

    async def report_over_limit(self, epoch: int, request_id: str, duration: float) -> Json:
        """A paid request measured (trimmed) over the limit: the hub refunds it and drops its entry (fenced)."""
        ...

    async def report_analysis(self, analysis: Analysis) -> Json: ...

    async def report_details(self, video_id: str, title: str, artist: str, duration: float) -> Json:
        """What a song this box fetched is: the hub fills in the venue's songs added by URL alone."""
        ...

    async def pending_songs(self, limit: int = 100) -> list[str]:
        """The venue's songs added by URL alone that no box has described yet."""
        ...

    async def report_error(self, video_id: str | None, message: str, at_ms: int, key: str) -> Json:
        """A failure on this box (e.g. a track it cannot play) for the venue's staff; stored once per ``key``."""
        ...

    async def catalog(self, video_ids: list[str]) -> dict[str, Json]: ...

    async def history(self, limit: int = 100) -> list[Json]: ...

    async def close(self) -> None: ...
