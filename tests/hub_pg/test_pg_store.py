"""PostgreSQL store behaviour that has no SQLite twin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from djamms_edge.hub.store.base import PaidRequest, RequestRules, Song, StoreUnavailable
from djamms_edge.hub.store.postgres import PostgresStore, UnstorableValue
from tests.ports import reserved_port

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


async def test_an_unreachable_database_is_one_clear_error_without_the_password() -> None:
    with reserved_port() as nothing_listens:
        store = PostgresStore(f"postgresql://hub:s3cret@127.0.0.1:{nothing_listens}/djamms")
        redacted = r"postgresql://hub:\*\*\*@127\.0\.0\.1:\d+/djamms unavailable"
        with pytest.raises(StoreUnavailable, match=redacted) as err:
            await store.open()
    assert "s3cret" not in str(err.value)


def test_serve_says_the_database_is_unreachable_and_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJAMMS_")}
    with reserved_port() as nothing_listens:
        config.write_text(f'[hub]\njwt_secret = "{"k" * 40}"\n'
                          f'[hub.store]\nurl = "postgresql://hub:s3cret@127.0.0.1:{nothing_listens}/djamms"\n')
        done = subprocess.run([sys.executable, "-m", "djamms_edge.hub.cli", "serve", "--config", str(config)],
                              capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 1
    assert "unavailable" in done.stderr and "Traceback" not in done.stderr
    assert "s3cret" not in done.stderr + done.stdout
