"""The only module that uses yt-dlp: download one source into the cache directory.

yt-dlp runs through its Python API (never a shell, never an interpolated string)
in a worker thread, so the event loop never waits on the network. Each attempt
downloads into its own scratch directory under ``work_dir`` (on the cache's file
system) and the finished file is moved to its final name with one atomic rename:
a crash or a kill at any moment leaves only scratch, which ``MediaCache`` removes
on start. A removed/private/missing video is ``FetchUnavailable`` at once; network
trouble is retried with exponential backoff and jitter, then ``FetchFailed``.

``FakeFetcher`` serves local files under the same contract, for tests of code
that needs a cache but not the network.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import shutil
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import yt_dlp

from djamms_edge.edge.media.config import FetchConfig
from djamms_edge.shared.ids import MediaSource

log = logging.getLogger(__name__)


class FetchUnavailable(Exception):
    """The source is gone for good (removed, private, 404, not media, too large): do not retry."""


class FetchFailed(Exception):
    """Transient trouble (network, server errors) outlasted every attempt; a later try may work."""


@dataclass(frozen=True, slots=True)
class Fetched:
    path: Path  # the final file: ``dest_stem`` plus the media's extension
    size: int
    title: str | None


class Fetcher(Protocol):
    async def fetch(self, source: MediaSource, dest_stem: Path) -> Fetched:
        """Download ``source`` to ``dest_stem.<ext>``; raise FetchUnavailable or FetchFailed."""
        ...

    async def close(self) -> None: ...


# --- what a failure means (pure) ---------------------------------------------------------

_HTTP_STATUS = re.compile(r"HTTP Error (\d{3})")
_GONE_PHRASES = (
    "video unavailable",
    "this video is unavailable",
    "this video is no longer available",
    "has been removed",
    "private video",
    "account associated with this video has been terminated",
    "copyright",
    "unsupported url",
    "requested format is not available",
    "is not a valid url",
    "no video formats found",
    "confirm your age",  # age-restricted: a box has no account to sign in with
    "age-restricted",
    "members-only",
    "join this channel",
    "available in your country",  # geo-blocked where this box is
    "blocked it in your country",
)
_GONE_STATUSES = {400, 401, 403, 404, 410, 451}


def classify_failure(message: str) -> Literal["unavailable", "transient"]:
    """Whether a yt-dlp error means the source is gone or that trying again later may work."""
    lowered = message.lower()
    status = _HTTP_STATUS.search(message)
    if status is not None:
        return "unavailable" if int(status.group(1)) in _GONE_STATUSES else "transient"
    if any(phrase in lowered for phrase in _GONE_PHRASES):
        return "unavailable"
    return "transient"  # network errors, timeouts, truncated transfers, anything unknown: bounded retries


def backoff_seconds(attempt: int, base: float, rand: Callable[[], float] = random.random) -> float:
    """Delay before try ``attempt + 1``: base, 2 x base, 4 x base... each scaled by 0.5-1.5 so boxes don't sync up."""
    return base * (2 ** (attempt - 1)) * (0.5 + rand())


def format_selector(config: FetchConfig) -> str:
    """yt-dlp format spec: audio only, or video no taller than max_height, H.264 first when preferred.

    ``<=?`` keeps formats whose height is unknown (a venue's direct media URL)."""
    if config.mode == "audio":
        return "ba[ext=m4a]/ba/b"
    h = config.max_height
    choices = [f"bv*[height<=?{h}]+ba/b[height<=?{h}]", "b"]
    if config.prefer_h264:
        choices.insert(0, f"bv*[height<=?{h}][vcodec^=avc1]+ba[ext=m4a]/b[height<=?{h}][vcodec^=avc1]")
    return "/".join(choices)


# --- the real thing ---------------------------------------------------------------------


class _Cancelled(Exception):
    """Raised inside yt-dlp's progress hook to stop a download whose caller went away."""


class _QuietLogger:
    """yt-dlp's chatter goes to our DEBUG; our own log says what happened, once."""

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    info = warning = error = debug


class YtDlpFetcher:
    def __init__(
        self,
        config: FetchConfig,
        work_dir: Path,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        workers: int = 2,
    ) -> None:
        self._config = config
        self._work_dir = work_dir
        self._sleep = sleep
        # One thread per download at once: a download hanging on a dead server holds its thread until the socket
        # times out, so the prefetcher's window (which widens past slow fetches) needs threads to spare.
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="yt-dlp")

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown, True)

    async def fetch(self, source: MediaSource, dest_stem: Path) -> Fetched:
        attempts = self._config.attempts
        for attempt in range(1, attempts + 1):
            try:
                fetched = await self._attempt(source, dest_stem)
            except _TransientError as exc:
                if attempt == attempts:
                    raise FetchFailed(f"{source.key}: {exc} (gave up after {attempts} tries)") from None
                delay = backoff_seconds(attempt, self._config.retry_base_seconds)
                if attempt == 1:  # one line for the trouble; the outcome is logged by whoever called us
                    log.warning("fetching %s failed (%s); retrying with backoff", source.key, exc)
                await self._sleep(delay)
                continue
            if attempt > 1:
                log.info("fetched %s after %d tries", source.key, attempt)
            return fetched
        raise AssertionError("unreachable")

    async def _attempt(self, source: MediaSource, dest_stem: Path) -> Fetched:
        scratch = self._work_dir / uuid.uuid4().hex
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self._pool, self._download, source.url, scratch, dest_stem, cancel)
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            cancel.set()  # the thread stops at its next chunk; wait so its scratch is gone before we return
            await asyncio.wait([job], timeout=self._config.socket_timeout_seconds + 5)
            if job.done() and not job.cancelled():
                job.exception()  # seen: it is the _Cancelled we asked for
            raise
        finally:
            if job.done():
                await asyncio.to_thread(shutil.rmtree, scratch, True)

    def _download(self, url: str, scratch: Path, dest_stem: Path, cancel: threading.Event) -> Fetched:
        scratch.mkdir(parents=True)

        def hook(_progress: Mapping[str, Any]) -> None:
            if cancel.is_set():
                raise _Cancelled

        params: dict[str, Any] = {
            "format": format_selector(self._config),
            "outtmpl": {"default": "media.%(ext)s"},
            "paths": {"home": str(scratch), "temp": str(scratch)},
            "merge_output_format": "mp4" if self._config.mode == "video" else None,
            "noplaylist": True,
            "allowed_extractors": ["youtube", "generic"],
            "js_runtimes": {self._config.js_runtime: _runtime_path(self._config.js_runtime_path)},
            "socket_timeout": self._config.socket_timeout_seconds,
            "retries": 3,  # resumes (HTTP Range) inside one attempt before we count a failure
            "fragment_retries": 3,
            "max_filesize": self._config.max_file_bytes,
            "cachedir": False,
            "quiet": True,
            "noprogress": True,
            "logger": _QuietLogger(),
            "progress_hooks": [hook],
        }
        try:
            with yt_dlp.YoutubeDL(params) as ydl:
                info = ydl.extract_info(url, download=True)
        except yt_dlp.utils.DownloadError as exc:
            if cancel.is_set():
                raise _Cancelled from None
            message = _clean(str(exc))
            if classify_failure(message) == "unavailable":
                raise FetchUnavailable(message) from None
            raise _TransientError(message) from None
        except _Cancelled:
            raise
        except Exception as exc:  # yt-dlp's internals or the disk (full, read-only): one source must not stop the box
            log.warning("yt-dlp failed unexpectedly on %s", url, exc_info=True)
            raise _TransientError(f"{type(exc).__name__}: {exc}") from None
        files = [p for p in scratch.iterdir() if p.is_file() and not p.name.endswith((".part", ".ytdl"))]
        if info is None or len(files) != 1:
            raise FetchUnavailable("nothing downloadable (too large, or not media)")
        final = dest_stem.with_name(f"{dest_stem.name}.{_safe_ext(files[0].suffix)}")
        size = files[0].stat().st_size
        try:
            os.replace(files[0], final)  # atomic: the cache sees a whole file or none
        except OSError as exc:
            raise _TransientError(f"cannot store the download: {exc}") from None
        return Fetched(final, size, info.get("title"))


class _TransientError(Exception):
    pass


def _runtime_path(path: str) -> dict[str, str]:
    return {"path": path} if path else {}


def _clean(message: str) -> str:
    return re.sub(r"^ERROR:\s*", "", message.replace("\r", "")).strip()


def _safe_ext(suffix: str) -> str:
    ext = suffix.lstrip(".").lower()
    return ext if re.fullmatch(r"[a-z0-9]{1,5}", ext) else "bin"


# --- the fake ---------------------------------------------------------------------------


class FakeFetcher:
    """Serves local files by source key under the Fetcher contract (atomic, unavailable for unknown keys)."""

    def __init__(self, files: Mapping[str, Path], *, transient_failures: int = 0) -> None:
        self._files = dict(files)
        self._transient_failures = transient_failures
        self.fetched: list[str] = []

    async def fetch(self, source: MediaSource, dest_stem: Path) -> Fetched:
        original = self._files.get(source.key)
        if original is None:
            raise FetchUnavailable(f"{source.key}: unknown to the fake")
        if self._transient_failures > 0:
            self._transient_failures -= 1
            raise FetchFailed(f"{source.key}: simulated network trouble")
        final = dest_stem.with_name(f"{dest_stem.name}{original.suffix}")
        scratch = final.with_name(f".{final.name}.{uuid.uuid4().hex}")
        await asyncio.to_thread(shutil.copyfile, original, scratch)
        await asyncio.to_thread(os.replace, scratch, final)
        self.fetched.append(source.key)
        return Fetched(final, original.stat().st_size, original.stem)

    async def close(self) -> None:
        return None
