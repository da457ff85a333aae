"""What a download is: real yt-dlp reads a video page from a loopback "site", the cache hands the details on
with the length it measured, and nothing about them can cost a good download."""

from __future__ import annotations

from pathlib import Path

import pytest

from djamms_edge.demo import write_video_page
from djamms_edge.edge.media.cache import MediaCache
from djamms_edge.edge.media.config import CacheConfig, FetchConfig
from djamms_edge.edge.media.fetcher import AttemptFailed, FakeFetcher, YtDlpFetcher, _fetched
from djamms_edge.shared.ids import parse_source
from djamms_edge.shared.song_details import SongDetails
from tests.edge.media.conftest import WINDOWED, Clock, files_under
from tests.edge.media.http_server import MediaServer

LOOPBACK = FetchConfig(attempts=1, socket_timeout_seconds=5.0, allowed_hosts=("127.0.0.1",))


def cache_at(tmp_path: Path, fetcher: YtDlpFetcher | FakeFetcher, told: list[tuple[str, SongDetails]],
             *, fail: bool = False) -> MediaCache:
    async def described(key: str, details: SongDetails) -> None:
        told.append((key, details))
        if fail:
            raise OSError("the sync state is on a full disk")

    return MediaCache(tmp_path / "media.db", tmp_path / "cache", fetcher, WINDOWED, CacheConfig(), clock=Clock(),
                      on_described=described)


async def test_a_fetched_page_says_what_the_song_is_with_the_length_the_box_measured(
    server: MediaServer, media_dir: Path, tmp_path: Path
) -> None:
    # "short": 0.5 s of silence, 3 s of tone, 1 s of silence (conftest.TRUTHS): 4.5 s long as measured.
    page = "/media/" + write_video_page(media_dir, "cobalt-blue-hour", f"{server.url}/media/short.m4a",
                            "Cobalt \u2013 Blue Hour (Official Video)", uploader="Cobalt VEVO")
    told: list[tuple[str, SongDetails]] = []
    cache = cache_at(tmp_path, YtDlpFetcher(LOOPBACK, tmp_path / "cache" / ".work"), told)
    await cache.open()
    try:
        url = server.url + page
        entry = await cache.ensure(url)
        assert entry.status == "ready", entry
    finally:
        await cache.close()
    assert [key for key, _ in told] == [url]
    details = told[0][1]
    assert (details.artist, details.title) == ("Cobalt", "Blue Hour")
    assert details.duration == pytest.approx(4.5, abs=0.1)  # measured here: the page claims no length


async def test_a_site_that_names_the_artist_is_believed_over_the_title(
    server: MediaServer, media_dir: Path, tmp_path: Path
) -> None:
    page = "/media/" + write_video_page(media_dir, "by-artist", f"{server.url}/media/short.m4a", "Delta Nine",
                            uploader="Label Channel", artist="Delta Nine")
    fetcher = YtDlpFetcher(LOOPBACK, tmp_path / "work")
    try:
        fetched = await fetcher.fetch(parse_source(server.url + page), tmp_path / "t")
    finally:
        await fetcher.close()
    # No "Artist - Title" and no track name: the title with the channel that put it up.
    assert fetched.details == SongDetails("Label Channel", "Delta Nine", None)


async def test_details_that_cannot_be_passed_on_never_cost_the_download(tmp_path: Path, media_dir: Path) -> None:
    key = "https://venue.example/song.m4a"
    told: list[tuple[str, SongDetails]] = []
    fake = FakeFetcher({key: media_dir / "short.m4a"}, details={key: SongDetails("A", "B", None)})
    cache = cache_at(tmp_path, fake, told, fail=True)
    await cache.open()
    try:
        assert (await cache.ensure(key)).status == "ready"
        assert await cache.playable(key) is not None
    finally:
        await cache.close()
    assert told and told[0][1].duration == pytest.approx(4.5, abs=0.1)


def test_a_workers_details_are_cleaned_again_and_nonsense_is_dropped(tmp_path: Path) -> None:
    stem = tmp_path / "t"
    (tmp_path / "t.m4a").write_bytes(b"x" * 10)

    def answer(details: object) -> SongDetails | None:
        found = {"path": str(tmp_path / "t.m4a"), "size": 10, "title": "x", "details": details}
        return _fetched({"ok": found}, stem).details

    assert answer({"artist": "\u202eA\x07", "title": " B " * 300, "duration": "long"}) == SongDetails(
        "A", ("B " * 100)[:199].rstrip() + "\u2026", None)
    assert answer({"artist": "", "title": "B"}) is None
    assert answer(["A", "B"]) is None
    assert answer(None) is None
    with pytest.raises(AttemptFailed):
        _fetched({"ok": {"path": str(tmp_path / "t.m4a"), "size": "10", "title": None}}, stem)


async def test_a_song_is_looked_up_without_downloading_it(server: MediaServer, media_dir: Path,
                                                          tmp_path: Path) -> None:
    page = "/media/" + write_video_page(media_dir, "look-up", f"{server.url}/media/long_fade_out.m4a",
                                        "Sine Collective - Long Fade", duration_s=27)
    fetcher = YtDlpFetcher(LOOPBACK, tmp_path / "work")
    try:
        details = await fetcher.describe(parse_source(server.url + page))
        gone = await fetcher.describe(parse_source(f"{server.url}/media/no-such-page.html"))
    finally:
        await fetcher.close()
    assert details == SongDetails("Sine Collective", "Long Fade", 27.0)  # the site's length: nothing measured
    assert gone is None
    media_gets = [r for r in server.requests if r[0] == "/media/long_fade_out.m4a"]
    assert len(media_gets) <= 1 and files_under(tmp_path) == []  # at most a probe of its type, never a download


def test_a_look_up_runs_at_the_lowest_priority() -> None:
    """The job itself, as its worker runs it (a worker process of its own, so the test renices a child)."""
    import multiprocessing

    def job(out: multiprocessing.queues.SimpleQueue[int]) -> None:
        import os

        from djamms_edge.edge.media import ytdlp

        ytdlp.describe_job({"config": {"attempts": 1, "allowed_hosts": []}, "source": "http://127.0.0.1:9/nothing"})
        out.put(os.nice(0))

    context = multiprocessing.get_context("fork")
    out = context.SimpleQueue()
    child = context.Process(target=job, args=(out,))
    child.start()
    child.join(60)
    assert out.get() == 19
