"""Songs staff added by URL alone, described before they play.

A song is described when the box downloads it (``MediaCache``'s ``on_described``), but a playlist imported for
tomorrow is not downloaded today. So the daemon also asks the hub which of its venue's songs are still pending
(``GET .../songs/pending``) and looks each up with yt-dlp's info alone, no download (a media worker, as every
yt-dlp job), one at a time with a pause between: YouTube sees a trickle, not a burst from the bar's address.
What it finds goes through the outbox like a download's details (the site's length instead of a measured one;
the hub keeps whichever arrives first). A song that says too little, or whose look-up failed, is tried again an
hour later; the hub is asked again every ``LOOK_EVERY_S``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from djamms_edge.edge.sync.errors import HubRefused, HubUnavailable
from djamms_edge.shared.ids import InvalidSource
from djamms_edge.shared.song_details import SongDetails

log = logging.getLogger(__name__)

LOOK_EVERY_S = 60.0
PAUSE_S = 2.0
RETRY_AFTER_S = 3600.0
BATCH = 100  # songs asked for at a time: an import of 500 is worked through over a few looks


class PendingDescriber:
    def __init__(
        self,
        pending: Callable[[int], Awaitable[list[str]]],
        lookup: Callable[[str], Awaitable[SongDetails | None]],
        report: Callable[[str, SongDetails], Awaitable[None]],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._pending, self._lookup, self._report = pending, lookup, report
        self._clock, self._sleep = clock, sleep
        self._tried: dict[str, float] = {}  # video id -> when it was last looked up (monotonic)

    async def run(self) -> None:
        """Look, then again every ``LOOK_EVERY_S``, until cancelled. Nothing here stops the daemon: a look that
        fails (the sync state on a full disk) is logged and tried again at the next."""
        while True:
            try:
                await self.look()
            except Exception:
                log.warning("describing songs added by URL alone failed; trying again later", exc_info=True)
            await self._sleep(LOOK_EVERY_S)

    async def look(self) -> int:
        """Describe what is pending and not tried within the hour; the number of songs reported."""
        try:
            video_ids = await self._pending(BATCH)
        except (HubUnavailable, HubRefused) as exc:  # offline, or a hub without the endpoint: nothing to do now
            log.debug("no pending songs to describe: %s", exc)
            return 0
        reported = 0
        for video_id in video_ids:
            last = self._tried.get(video_id)
            if last is not None and self._clock() - last < RETRY_AFTER_S:
                continue
            self._tried[video_id] = self._clock()
            try:
                details = await self._lookup(video_id)
            except InvalidSource:  # not something this box fetches (the hub's allow_urls differs from ours)
                continue
            if details is not None and details.duration is not None:
                await self._report(video_id, details)
                reported += 1
            await self._sleep(PAUSE_S)
        if reported:
            log.info("described %d songs added by URL alone", reported)
        return reported
