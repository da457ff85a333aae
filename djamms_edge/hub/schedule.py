"""The weekly schedule: which playlist plays in which window of venue time, switched by the hub.

``slot_at`` is the pure rule. ``ScheduleSwitcher`` is the hub task (owned by the app's TaskOwner)
that, every ``check_interval_s`` or when a slot is added or removed, applies each venue's current
window once: when a window starts its playlist is activated (the edges follow through the feed);
staff activating another playlist inside a window are not overridden until the next window starts.
Outside every window the last playlist plays on. The clock is the service's (injectable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from djamms_edge.hub.service import HubService
from djamms_edge.hub.store.base import ScheduleSlot, VenueSchedule

log = logging.getLogger(__name__)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def slot_at(slots: Sequence[ScheduleSlot], local: datetime) -> ScheduleSlot | None:
    """The window ``local`` (venue time) falls in; of overlapping ones, the one that started last."""
    minute = local.hour * 60 + local.minute
    inside = [s for s in slots if s.weekday == local.weekday() and s.start_minute <= minute < s.end_minute]
    return max(inside, key=lambda s: (s.start_minute, s.slot_id), default=None)


def venue_time(now_s: float, timezone: str) -> datetime:
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")  # the API only stores known names; a zone database without it plays UTC
    return datetime.fromtimestamp(now_s, zone)


class ScheduleSwitcher:
    def __init__(self, service: HubService) -> None:
        self._service = service
        self._kick = asyncio.Event()

    def kick(self) -> None:
        """A slot was added or removed: check now rather than at the next interval."""
        self._kick.set()

    async def check(self) -> list[str]:
        """Apply every venue's current window; the venues switched."""
        switched = []
        for schedule in await self._service.store.schedules():
            if await self._apply(schedule):
                switched.append(schedule.venue_id)
        return switched

    async def _apply(self, schedule: VenueSchedule) -> bool:
        slot = slot_at(schedule.slots, venue_time(self._service.clock(), schedule.timezone))
        slot_id = None if slot is None else slot.slot_id
        if slot_id == schedule.applied_slot_id:
            return False
        applied = await self._service.store.apply_schedule(schedule.venue_id, schedule.applied_slot_id, slot,
                                                           self._service.now_ms())
        if applied and slot is not None:
            log.info("venue %s: schedule window %s %02d:%02d-%02d:%02d plays playlist %s", schedule.venue_id,
                     WEEKDAYS[slot.weekday], *divmod(slot.start_minute, 60), *divmod(slot.end_minute, 60),
                     slot.playlist_id)
        return applied

    async def run(self) -> None:
        interval = self._service.config.schedule.check_interval_s
        while True:
            self._kick.clear()
            try:
                await self.check()
            except Exception:
                # A store hiccup only delays a switch to the next round; not worth stopping the hub for.
                log.exception("schedule check failed; retrying in %.0f s", interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), interval)
