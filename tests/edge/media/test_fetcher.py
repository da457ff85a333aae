"""The fetcher: failure classification, format choice, and real yt-dlp downloads from a loopback server."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from djamms_edge.edge.media import fetcher as fetcher_module
from djamms_edge.edge.media.config import FetchConfig
from djamms_edge.edge.media.fetcher import (
    FakeFetcher,
    Fetcher,
    FetchFailed,
    FetchRefused,
    FetchUnavailable,
    YtDlpFetcher,
    backoff_seconds,
    classify_failure,
    disk_refusal,
)
from djamms_edge.shared.ids import parse_source
from tests.edge.media.conftest import files_under
from tests.edge.media.http_server import MediaServer
from tests.edge.media.test_worker import worker_pids

LOOPBACK = ("127.0.0.1",)  # the test media server: internal, so allowed by name as a venue would its NAS
FAST_RETRIES = FetchConfig(attempts=2, retry_base_seconds=0.01, socket_timeout_seconds=2.0, allowed_hosts=LOOPBACK)


# Messages as yt-dlp prints them (its YouTube extractor's wording; YouTube writes its apostrophes as U+2019).
@pytest.mark.parametrize(
    ("message", "kind"),
    [
        # gone for good: only a clear "unavailable / private / removed"
        ("[youtube] dQw4w9WgXcQ: Video unavailable. This video has been removed by the uploader", "unavailable"),
        ("[youtube] abc: Video unavailable", "unavailable"),
        ("[youtube] abc: Video unavailable. This video is no longer available because the YouTube account "
         "associated with this video has been terminated.", "unavailable"),
        ("[youtube] abc: Private video. Sign in if you've been granted access to this video. Use "
         "--cookies-from-browser or --cookies for the authentication.", "unavailable"),
        ("[youtube] abc: This video has been removed for violating YouTube's Terms of Service", "unavailable"),
        ("[youtube] abc: Video unavailable. This video contains content from SME, who has blocked it on copyright "
         "grounds", "unavailable"),
        ("[generic] x: Unable to download webpage: HTTP Error 404: Not Found", "unavailable"),
        ("[generic] x: Unable to download webpage: HTTP Error 410: Gone", "unavailable"),
        ("Unsupported URL: http://example.com/page", "unavailable"),
        # YouTube refusing this box: a runtime, a yt-dlp update or time fixes these
        ("unable to download video data: HTTP Error 403: Forbidden", "environment"),
        ("[youtube] abc: Requested format is not available. Use --list-formats for a list of available formats",
         "environment"),
        ("[youtube] abc: Requested format is not available. Use --list-formats for a list of available formats "
         "(after: [youtube] abc: n challenge solving failed: Some formats may be missing. Ensure you have a "
         "supported JavaScript runtime and challenge solver script distribution installed.)", "environment"),
        ("[youtube] abc: Only images are available for download. use --list-formats to see them", "environment"),
        ("[youtube] abc: Sign in to confirm you’re not a bot. Use --cookies-from-browser or --cookies for the "
         "authentication. See  https://github.com/yt-dlp/yt-dlp/wiki/FAQ#how-do-i-pass-cookies-to-yt-dlp",
         "environment"),
        ("[youtube] abc: Video unavailable. This content isn’t available, try again later. The current session has "
         "been rate-limited by YouTube for up to an hour.", "environment"),
        ("[youtube] abc: Sign in to confirm your age. This video may be inappropriate for some users.", "environment"),
        ("[youtube] abc: The uploader has not made this video available in your country", "environment"),
        ("[youtube] abc: Join this channel to get access to members-only content like this video", "environment"),
        ("[youtube] abc: The page needs to be reloaded.", "environment"),
        ("[generic] x: Unable to download webpage: HTTP Error 429: Too Many Requests", "environment"),
        # passing trouble
        ("[generic] x: Unable to download webpage: HTTP Error 503: Service Unavailable", "transient"),
        ("[generic] x: Unable to download webpage: [Errno 111] Connection refused", "transient"),
        ("[download] Got error: Downloaded 1 bytes, expected 2 bytes. Giving up after 3 retries", "transient"),
        ("[generic] x: Unable to download webpage: The read operation timed out", "transient"),
        ("something nobody has seen before", "transient"),
    ],
)
def test_failures_are_classified(message: str, kind: str) -> None:
    assert classify_failure(message) == kind


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [(1, 0.5, 5.0), (2, 0.5, 10.0), (3, 0.5, 20.0), (1, 0.0, 2.5), (1, 1.0, 7.5)],
)
def test_backoff_doubles_with_jitter(attempt: int, rand: float, expected: float) -> None:
    assert backoff_seconds(attempt, 5.0, lambda: rand) == pytest.approx(expected)


@dataclass
class Contract:
    fetcher: Fetcher
    known: str
    unknown: str
    original: Path


@pytest.fixture(params=["yt-dlp", "fake"])
async def contract(
    request: pytest.FixtureRequest, server: MediaServer, media_dir: Path, tmp_path: Path
) -> AsyncIterator[Contract]:
    original = media_dir / "hard_ending.mp4"
    fetcher: Fetcher
    if request.param == "yt-dlp":
        fetcher = YtDlpFetcher(FAST_RETRIES, tmp_path / "work")
        known, unknown = f"{server.url}/media/hard_ending.mp4", f"{server.url}/gone/nothing.mp4"
    else:
        known, unknown = "https://venue.example/song.mp4", "dQw4w9WgXcQ"
        fetcher = FakeFetcher({known: original})
    yield Contract(fetcher, known, unknown, original)
    await fetcher.close()


async def test_contract_a_fetch_yields_the_whole_file_under_its_final_name(contract: Contract, tmp_path: Path) -> None:
    fetched = await contract.fetcher.fetch(parse_source(contract.known), tmp_path / "track")
    assert fetched.path.parent == tmp_path and fetched.path.name == "track.mp4"
    assert fetched.path.read_bytes() == contract.original.read_bytes()
    assert fetched.size == contract.original.stat().st_size


async def test_contract_a_missing_source_is_unavailable_and_leaves_nothing(contract: Contract, tmp_path: Path) -> None:
    with pytest.raises(FetchUnavailable):
        await contract.fetcher.fetch(parse_source(contract.unknown), tmp_path / "track")
    assert files_under(tmp_path) == []


@pytest.fixture
async def ytdlp(tmp_path: Path) -> AsyncIterator[YtDlpFetcher]:
    fetcher = YtDlpFetcher(FAST_RETRIES, tmp_path / "work")
    yield fetcher
    await fetcher.close()


async def test_a_connection_dropped_mid_body_is_resumed_with_range(
    ytdlp: YtDlpFetcher, server: MediaServer, media_dir: Path, tmp_path: Path
) -> None:
    fetched = await ytdlp.fetch(parse_source(f"{server.url}/flaky/long_fade_out.webm"), tmp_path / "t")
    assert fetched.path.read_bytes() == (media_dir / "long_fade_out.webm").read_bytes()
    assert any(rng not in (None, "bytes=0-") for path, rng in server.requests if path.startswith("/flaky/"))


async def test_a_404_is_not_retried(ytdlp: YtDlpFetcher, server: MediaServer, tmp_path: Path) -> None:
    with pytest.raises(FetchUnavailable, match="404"):
        await ytdlp.fetch(parse_source(f"{server.url}/gone/x.mp4"), tmp_path / "t")
    assert len(server.requests) == 1


async def test_a_403_is_youtube_refusing_this_box_retried_with_backoff_then_refused(
    ytdlp: YtDlpFetcher, server: MediaServer, tmp_path: Path
) -> None:
    """Real yt-dlp against a server answering 403, as googlevideo does when the player challenge went unsolved:
    tried again (not "gone for good"), then FetchRefused, which the cache retries later."""
    with pytest.raises(FetchRefused, match="403") as refused:
        await ytdlp.fetch(parse_source(f"{server.url}/forbidden/hard_ending.mp4"), tmp_path / "t")
    assert refused.value.failure_class == "environment"
    assert len([path for path, _ in server.requests if path.startswith("/forbidden/")]) == 2  # both attempts
    assert files_under(tmp_path) == []


async def test_a_connection_that_always_drops_fails_after_the_attempts_and_leaves_nothing(
    ytdlp: YtDlpFetcher, server: MediaServer, tmp_path: Path
) -> None:
    with pytest.raises(FetchFailed, match="gave up after 2 tries"):
        await ytdlp.fetch(parse_source(f"{server.url}/drop/hard_ending.m4a"), tmp_path / "t")
    assert files_under(tmp_path) == []


async def test_a_server_that_is_down_is_transient(ytdlp: YtDlpFetcher, tmp_path: Path) -> None:
    down = MediaServer(tmp_path)
    await down.start()
    await down.close()  # the port is now closed: connection refused
    with pytest.raises(FetchFailed):
        await ytdlp.fetch(parse_source(f"{down.url}/media/x.mp4"), tmp_path / "t")


async def test_cancelling_a_fetch_stops_the_download_and_removes_its_scratch(
    ytdlp: YtDlpFetcher, server: MediaServer, tmp_path: Path
) -> None:
    task = asyncio.create_task(ytdlp.fetch(parse_source(f"{server.url}/stall/long_fade_out.mp4"), tmp_path / "t"))
    await asyncio.wait_for(server.half_sent.wait(), 20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert files_under(tmp_path) == []


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("UnavailableVideoError: Unable to download video: [Errno 28] No space left on device", errno.ENOSPC),
        ("ERROR: unable to write data: [Errno 30] Read-only file system", errno.EROFS),
        ("cannot store the download: [Errno 122] Disk quota exceeded", errno.EDQUOT),
        ("HTTP Error 503: Service Unavailable", None),
        ("[Errno 111] Connection refused", None),
    ],
)
def test_a_disk_refusing_the_download_is_told_from_network_trouble(message: str, code: int | None) -> None:
    assert disk_refusal(message) == code


async def test_a_slow_trickle_gives_up_at_the_fetch_limit_not_after_every_attempt(
    server: MediaServer, tmp_path: Path
) -> None:
    """A server sending just enough to keep the socket open would hold the fetch (and a worker slot) for attempts x
    attempt_limit_seconds: 3 x 60 s here. The fetch as a whole gives up at fetch_limit_seconds, and retries later."""
    config = dataclasses.replace(FAST_RETRIES, attempts=3, attempt_limit_seconds=60.0, fetch_limit_seconds=4.0)
    fetcher = YtDlpFetcher(config, tmp_path / "work")
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(FetchFailed, match=r"gave up after 1 try in fetch_limit_seconds \(4s\)"):
        await fetcher.fetch(parse_source(f"{server.url}/trickle/long_fade_out.mp4"), tmp_path / "t")
    assert loop.time() - began < 20  # 4 s and the worker's reaping; not minutes
    assert files_under(tmp_path) == []


async def test_a_download_that_cannot_be_stored_fails_without_leftovers(
    ytdlp: YtDlpFetcher, server: MediaServer, tmp_path: Path
) -> None:
    with pytest.raises(FetchFailed, match="cannot store the download"):
        await ytdlp.fetch(parse_source(f"{server.url}/media/short.m4a"), tmp_path / "no-such-dir" / "t")
    assert files_under(tmp_path) == []


# --- no fetch of internal addresses -------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "{server}/media/hard_ending.mp4",  # 127.0.0.1: the box itself (its status page is there too)
        "http://localhost:{port}/media/hard_ending.mp4",  # a name that resolves inside
        "http://169.254.169.254/latest/meta-data/",  # a cloud's metadata service
        "http://10.1.2.3/x.mp4",
        "http://[fd00::1]/x.mp4",
    ],
)
async def test_an_internal_address_is_refused_before_anything_is_sent(
    server: MediaServer, tmp_path: Path, url: str
) -> None:
    fetcher = YtDlpFetcher(FetchConfig(attempts=1, socket_timeout_seconds=2.0), tmp_path / "work")  # nothing allowed
    try:
        source = parse_source(url.format(server=server.url, port=server.url.rsplit(":", 1)[1]))
        with pytest.raises(FetchUnavailable, match=r"refused to fetch from .*address"):
            await asyncio.wait_for(fetcher.fetch(source, tmp_path / "t"), 5)  # refused, not a connect timeout
    finally:
        await fetcher.close()
    assert server.requests == []
    assert files_under(tmp_path) == []


async def test_a_redirect_to_an_internal_address_is_refused(server: MediaServer, tmp_path: Path) -> None:
    """The first host is allowed (a venue's NAS, say), the address it redirects to is not: the check runs on
    every connection yt-dlp opens, not only on the URL it was given."""
    port = server.url.rsplit(":", 1)[1]
    config = FetchConfig(attempts=1, socket_timeout_seconds=2.0, allowed_hosts=("localhost",))
    fetcher = YtDlpFetcher(config, tmp_path / "work")
    try:
        with pytest.raises(FetchUnavailable, match=r"refused to fetch from 127\.0\.0\.1: a loopback address"):
            await fetcher.fetch(parse_source(f"http://localhost:{port}/redirect/hard_ending.mp4"), tmp_path / "t")
        refused = [path for path, _ in server.requests]
        # The allowed name itself still works.
        fetched = await fetcher.fetch(parse_source(f"http://localhost:{port}/media/hard_ending.mp4"), tmp_path / "t")
    finally:
        await fetcher.close()
    assert "/redirect/hard_ending.mp4" in refused and "/media/hard_ending.mp4" not in refused
    assert fetched.size > 0


async def test_stalled_downloads_never_run_more_workers_at_once_than_the_cap(
    server: MediaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A box whose network swallows packets: every attempt waits out its timeout, and the prefetcher keeps starting
    fetches beside the stalled ones. Each worker is ~50 MiB: their number is capped, the fetches queue for a slot."""
    monkeypatch.setattr(fetcher_module, "MAX_WORKERS", 2)
    config = FetchConfig(mode="audio", attempts=1, socket_timeout_seconds=1.0, allowed_hosts=("127.0.0.1",))
    ytdlp = YtDlpFetcher(config, tmp_path / "work")
    names = ["no_silence.m4a", "hard_ending.m4a", "long_fade_out.m4a", "quiet_intro.m4a"]
    fetches = asyncio.gather(*(ytdlp.fetch(parse_source(f"{server.url}/stall/{name}"), tmp_path / name)
                               for name in names), return_exceptions=True)
    most = 0
    while not fetches.done():
        most = max(most, len(worker_pids()))
        await asyncio.sleep(0.05)
    assert most == 2
    assert [type(outcome) for outcome in fetches.result()] == [FetchFailed] * len(names)
    assert {target for target, _ in server.requests} == {f"/stall/{name}" for name in names}  # each one tried
