"""Where the engine gets its entries from: the local playlist now, the hub's queue replica later.

A ``QueueSource`` owns the order (``upcoming``); the engine only plays what it is given and
reports back. ``started`` must make the source stop offering that entry as the next one (a
paid request is consumed when it starts, so a crash mid-song resumes it instead of replaying
it); ``finished`` tells how it went.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

from djamms_edge.edge.queue.model import QueueEntry


class Outcome(StrEnum):
    PLAYED = "played"  # reached its end offset
    SKIPPED = "skipped"  # staff skipped it
    FAILED = "failed"  # missing or broken: never started, or died while playing


class QueueView(Protocol):
    """The queue as read by what never plays from it (the prefetcher)."""

    async def upcoming(self, count: int) -> list[QueueEntry]:
        """The next ``count`` entries in play order (fewer if there are not that many)."""
        ...

    def subscribe(self, on_change: Callable[[], None]) -> None:
        """Call ``on_change`` (on the loop's thread) whenever ``upcoming`` may have changed."""
        ...


class QueueSource(QueueView, Protocol):
    async def started(self, entry: QueueEntry) -> None: ...

    async def finished(self, entry: QueueEntry, outcome: Outcome, detail: str = "") -> None: ...

    async def request_limit(self) -> float | None:
        """The longest a paid request may play here, measured on the fetched track and trimmed (None: any)."""
        ...

    async def refused(self, entry: QueueEntry, measured_s: float) -> None:
        """A paid request measured over ``request_limit()``: it never plays; the source stops offering it and
        has it refunded."""
        ...
