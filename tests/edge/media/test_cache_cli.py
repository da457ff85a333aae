"""``djamms-edge cache retry``: the real program clears failure marks in the box's own SQLite files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from djamms_edge.edge.media.cache import MediaCache
from djamms_edge.edge.media.config import CacheConfig
from djamms_edge.edge.media.fetcher import FakeFetcher
from djamms_edge.edge.state import PlaybackState
from tests.edge.media.conftest import WINDOWED

PROGRAM = Path(sys.executable).with_name("djamms-edge")


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"STATE_DIRECTORY", "CACHE_DIRECTORY"}}
    return subprocess.run([str(PROGRAM), "cache", "retry", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120, env=env, check=False)


async def test_cache_retry_lists_then_clears_marks_by_id_and_all(tmp_path: Path, media_dir: Path) -> None:
    state, cache_dir = tmp_path / "state", tmp_path / "cache"
    config = tmp_path / "config.toml"
    config.write_text(f'[edge]\nstate_dir = "{state}"\ncache_dir = "{cache_dir}"\n')
    fake = FakeFetcher({"dQw4w9WgXcQ": media_dir / "hard_ending.m4a"}, refusals=1)
    cache = MediaCache(state / "media.db", cache_dir, fake, WINDOWED, CacheConfig())
    await cache.open()
    await cache.ensure("dQw4w9WgXcQ")  # refused: failed (environment)
    await cache.ensure("https://venue.example/gone.mp4")  # unknown to the fake: unavailable
    await cache.close()
    db = PlaybackState.database(state)
    await db.open()
    await PlaybackState(db).mark_unplayable("dQw4w9WgXcQ", "failed", 1.0)
    await db.close()

    listed = cli(config)
    assert listed.returncode == 0, listed.stderr
    assert "dQw4w9WgXcQ: failed (environment)" in listed.stdout and "403" in listed.stdout
    assert "https://venue.example/gone.mp4: unavailable" in listed.stdout

    by_id = cli(config, "dQw4w9WgXcQ")
    assert by_id.returncode == 0, by_id.stderr
    assert "dQw4w9WgXcQ: will be fetched again" in by_id.stdout
    assert "cleared 1 cache failure mark(s) and 1 unplayable mark(s)" in by_id.stdout

    everything = cli(config, "--all")
    assert "https://venue.example/gone.mp4: will be fetched again" in everything.stdout
    assert "no failure marks" in cli(config).stdout

    refused = cli(config, "not a video; rm -rf /")
    assert refused.returncode == 2 and "cache retry" in refused.stderr
