"""From queue entries to cues: the media cache's answers, and levelling to the loudness target."""

from __future__ import annotations

from pathlib import Path

import pytest

from djamms_edge.edge.media.cache import CachedTrack, CacheEntry
from djamms_edge.edge.player.resolver import CachedMediaResolver, Cue, Unplayable, levelling_gain
from djamms_edge.edge.queue.model import QueueEntry


@pytest.mark.parametrize(
    ("loudness", "expected"),
    [(None, 0.0), (-14.0, 0.0), (-20.0, 6.0), (-8.5, -5.5), (-40.0, 12.0), (3.0, -12.0)],
)
def test_levelling_gain(loudness: float | None, expected: float) -> None:
    assert levelling_gain(loudness, target_lufs=-14.0, max_gain_db=12.0) == expected


class Cache:
    def __init__(self) -> None:
        self.tracks: dict[str, CachedTrack] = {}
        self.entries: dict[str, CacheEntry] = {}

    async def playable(self, key: str) -> CachedTrack | None:
        return self.tracks.get(key)

    async def entry(self, key: str) -> CacheEntry | None:
        return self.entries.get(key)


class Local:
    async def resolve(self, entry: QueueEntry) -> Cue:
        return Cue(Path(entry.source), 0.5)


@pytest.fixture
def cache() -> Cache:
    return Cache()


@pytest.fixture
def resolver(cache: Cache) -> CachedMediaResolver:
    return CachedMediaResolver(cache, Local(), target_lufs=-14.0, max_gain_db=12.0, not_ready_retry_s=7.0)


async def test_a_cached_track_plays_its_cues_levelled(cache: Cache, resolver: CachedMediaResolver) -> None:
    cache.tracks["dQw4w9WgXcQ"] = CachedTrack("dQw4w9WgXcQ", Path("/c/x.mp4"), 213.0, 1.2, 209.8, -10.0, "x")
    assert await resolver.resolve(QueueEntry("e", "dQw4w9WgXcQ")) == Cue(Path("/c/x.mp4"), 1.2, 209.8, -4.0)


@pytest.mark.parametrize("status", ["unavailable", "broken"])
async def test_gone_or_broken_media_is_unplayable_for_good(
    cache: Cache, resolver: CachedMediaResolver, status: str,
) -> None:
    cache.entries["dQw4w9WgXcQ"] = CacheEntry("dQw4w9WgXcQ", status, error="Video unavailable")  # type: ignore[arg-type]
    with pytest.raises(Unplayable, match="Video unavailable") as caught:
        await resolver.resolve(QueueEntry("e", "dQw4w9WgXcQ"))
    assert caught.value.retry_after is None


@pytest.mark.parametrize("known", [None, "failed"])
async def test_media_not_downloaded_yet_is_not_ready(
    cache: Cache, resolver: CachedMediaResolver, known: str | None,
) -> None:
    if known:
        cache.entries["dQw4w9WgXcQ"] = CacheEntry("dQw4w9WgXcQ", known)  # type: ignore[arg-type]
    with pytest.raises(Unplayable) as caught:
        await resolver.resolve(QueueEntry("e", "dQw4w9WgXcQ"))
    assert caught.value.retry_after == 7.0


async def test_local_paths_go_to_the_local_resolver(resolver: CachedMediaResolver) -> None:
    assert await resolver.resolve(QueueEntry("e", "/music/a.m4a")) == Cue(Path("/music/a.m4a"), 0.5)
