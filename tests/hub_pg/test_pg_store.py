"""PostgreSQL store behaviour that has no SQLite twin."""

from __future__ import annotations

import pytest

from djamms_edge.hub.store.base import PaidRequest, RequestRules, Song
from djamms_edge.hub.store.postgres import PostgresStore, UnstorableValue

RULES = RequestRules(max_duration_s=300, artist_limit=3, artist_window_ms=1_800_000)


@pytest.mark.parametrize("title", ["NUL \x00 inside", "lone \ud800 surrogate"])
async def test_text_postgresql_cannot_hold_is_refused_and_nothing_is_stored(pg_url: str, title: str) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    try:
        await store.create_venue("v", "V", 0)
        song = Song("dQw4w9WgXcQ", title, "Artist", 200.0)
        with pytest.raises(UnstorableValue, match="NUL or unpaired surrogate"):
            await store.submit_paid_request(PaidRequest("v", song, "pay-1", None, "127.0.0.1"), RULES, 1000)
        assert await store.list_requests("v", None, 10) == []
        assert (await store.queue_snapshot("v")).version == 0
    finally:
        await store.close()
