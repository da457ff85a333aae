"""Two hub instances on one PostgreSQL: a venue's rules cached by one (hub/venue_cache.py) give way at once
to a change made on the other, by PostgreSQL's notification, not only when the cache's second is up."""

from __future__ import annotations

import asyncio
import time

from tests.hub_pg.conftest import VENUE, TwoHubs
from tests.hub_pg.test_two_instances import post


def paid(n: int, artist: str) -> dict[str, object]:
    return {"song": {"videoId": "dQw4w9WgXcQ", "title": f"t{n}", "artist": artist, "duration": 200},
            "paymentId": f"pay-cache-{n}"}


async def test_a_ban_on_one_instance_refuses_the_artist_on_the_other_at_once(two_hubs: TwoHubs) -> None:
    status, _ = await post(two_hubs, 0, f"/venues/{VENUE}/requests", paid(0, "The Band"))
    assert status == 201  # instance 0 has the venue's rules (no bans) in its cache now
    status, _ = await post(two_hubs, 1, f"/venues/{VENUE}/marks", {"kind": "ban_artist", "value": "The Band"},
                           two_hubs.admin_token)
    assert status == 201
    banned_at, n = time.monotonic(), 0
    while True:
        n += 1
        status, body = await post(two_hubs, 0, f"/venues/{VENUE}/requests", paid(n, "the  band"))
        if status == 422:
            break
        assert status == 201 and time.monotonic() - banned_at < 0.5, "instance 0 kept its cached rules"
        await asyncio.sleep(0.02)
    assert body["error"] == "This song is not played at this venue"
