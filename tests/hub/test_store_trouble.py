"""Store trouble is a 503 with Retry-After, never a 500; readiness says so; nothing acknowledged is lost
(issue 13, item 6)."""

from __future__ import annotations

import pytest

from djamms_edge.hub.store.sqlite import SqliteStore
from tests.hub.conftest import HubFactory
from tests.hub.test_requests import SONG, paid, request


async def _limit_pages(store: SqliteStore, pages: int | None) -> None:
    """SQLite's own page limit: the same SQLITE_FULL a full disk gives, without filling this machine's."""
    limit = pages if pages is not None else 1_073_741_823
    await store._db.write(lambda conn: conn.execute(f"PRAGMA max_page_count = {limit}"))


@pytest.mark.parametrize("backend", ["sqlite"])  # PostgreSQL's outage is tests/hub_pg/test_outage.py
async def test_a_full_disk_is_503_and_loses_nothing_acknowledged(start_hub: HubFactory) -> None:
    async with start_hub() as hub:
        venue = await hub.venue()
        assert isinstance(hub.store, SqliteStore)
        pages = await hub.store._db.read(lambda conn: conn.execute("PRAGMA page_count").fetchone()[0])
        await _limit_pages(hub.store, pages)
        acknowledged, refused = [], []
        for n in range(300):
            payment = f"pi-full-{n}"
            song = {**SONG, "artist": f"artist {n}", "title": "x" * 250}
            async with hub.http.post(f"{hub.url}/api/v1/venues/{venue}/requests",
                                     json=paid(song, payment)) as resp:
                assert resp.status in (201, 503), await resp.text()
                if resp.status == 201:
                    acknowledged.append(payment)
                    continue
                assert resp.headers["Retry-After"] == "5" and "try again" in (await resp.json())["error"]
                refused.append(payment)
            if len(refused) >= 3:
                break
        assert refused, "the page limit never filled the database"
        status, health = await hub.call("GET", "/healthz")
        assert status == 503 and "full" in health["store"]
        assert (await hub.call("GET", "/readyz"))[0] == 503
        assert await hub.call("GET", "/livez") == (200, {"ok": True})

        await _limit_pages(hub.store, None)  # room again: the refused requests can be sent again
        for payment in refused:
            n = int(payment.rsplit("-", 1)[1])
            song = {**SONG, "artist": f"artist {n}", "title": "x" * 250}
            assert (await request(hub, venue, paid(song, payment)))[0] == 201
        assert await hub.call("GET", "/healthz") == (200, {"ok": True, "store": "ok"})
        _, listed = await hub.call("GET", f"/api/v1/venues/{venue}/requests?limit=1000", headers=hub.staff(venue))
        stored = {r["paymentId"] for r in listed["requests"]}
        assert stored == set(acknowledged) | set(refused)
