"""The pending-song describer: what it looks up, when again, and that nothing it meets stops it."""

from __future__ import annotations

import asyncio

import pytest

from djamms_edge.edge import describer as describer_module
from djamms_edge.edge.describer import RETRY_AFTER_S, PendingDescriber
from djamms_edge.edge.sync.errors import HubUnavailable
from djamms_edge.shared.ids import parse_source
from djamms_edge.shared.song_details import SongDetails

KNOWN = {
    "aaaaaaaaaa1": SongDetails("Cobalt", "Blue Hour", 201.0),
    "bbbbbbbbbb2": SongDetails("Delta Nine", "No Length", None),  # the site gave none: nothing to send
}


class Fakes:
    def __init__(self, pending: list[str]) -> None:
        self.pending = pending
        self.now = 0.0
        self.looked: list[str] = []
        self.reported: list[tuple[str, SongDetails]] = []
        self.hub_down = False
        self.report_fails = False

    async def ask(self, limit: int) -> list[str]:
        if self.hub_down:
            raise HubUnavailable("no route to the hub")
        return self.pending[:limit]

    async def lookup(self, key: str) -> SongDetails | None:
        parse_source(key, allow_urls=False)  # raises InvalidSource as the cache does for what it cannot fetch
        self.looked.append(key)
        return KNOWN.get(key)

    async def report(self, key: str, details: SongDetails) -> None:
        if self.report_fails:
            raise OSError("database or disk is full")
        self.reported.append((key, details))

    async def sleep(self, seconds: float) -> None:
        self.now += seconds

    def describer(self) -> PendingDescriber:
        return PendingDescriber(self.ask, self.lookup, self.report, clock=lambda: self.now, sleep=self.sleep)


async def test_each_pending_song_is_looked_up_once_an_hour_and_reported_when_it_has_a_length() -> None:
    fakes = Fakes(["aaaaaaaaaa1", "bbbbbbbbbb2", "ccccccccccc", "https://venue.example/page"])
    describer = fakes.describer()
    assert await describer.look() == 1
    assert fakes.looked == ["aaaaaaaaaa1", "bbbbbbbbbb2", "ccccccccccc"]  # the URL: InvalidSource, skipped
    assert fakes.reported == [("aaaaaaaaaa1", KNOWN["aaaaaaaaaa1"])]
    fakes.now += 60
    assert await describer.look() == 0 and len(fakes.looked) == 3  # nothing again within the hour
    fakes.now += RETRY_AFTER_S
    await describer.look()
    assert fakes.looked[3:] == ["aaaaaaaaaa1", "bbbbbbbbbb2", "ccccccccccc"]


async def test_an_unreachable_hub_or_a_failing_report_never_stops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    fakes = Fakes(["aaaaaaaaaa1"])
    fakes.hub_down = True
    describer = fakes.describer()
    assert await describer.look() == 0
    fakes.hub_down, fakes.report_fails = False, True
    looks = 0

    async def counted_sleep(seconds: float) -> None:
        nonlocal looks
        if seconds == describer_module.LOOK_EVERY_S:
            looks += 1
            if looks == 2:
                raise asyncio.CancelledError
        await fakes.sleep(seconds)

    describer = PendingDescriber(fakes.ask, fakes.lookup, fakes.report, clock=lambda: fakes.now, sleep=counted_sleep)
    with pytest.raises(asyncio.CancelledError):
        await describer.run()  # the report raised in the first look; the loop went on to a second
    assert looks == 2 and fakes.looked == ["aaaaaaaaaa1"]

