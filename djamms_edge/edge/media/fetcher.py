"""Downloading one source into the cache directory with yt-dlp, each attempt in a media worker process.

yt-dlp itself runs only in a worker (``worker``; the download in ``ytdlp``, the one module that imports
it): the daemon never loads it, a crash or a hang in it fails that attempt (killed at
``attempt_limit_seconds``; the whole fetch, all its attempts, at ``fetch_limit_seconds``), and its memory goes
back to the system when the attempt ends. Each attempt
downloads into its own scratch directory under ``work_dir`` (on the cache's file system), removed here
whatever happened, and the finished file gets its final name with one atomic rename. Only a clearly
removed/private/missing video is ``FetchUnavailable`` (at once); YouTube refusing this box (403, missing
formats, bot/sign-in checks, failed JS challenges) is retried with exponential backoff and jitter, then
``FetchRefused``; network trouble, or a worker that died, hung or answered nonsense, the same way, then
``FetchFailed``. The cache tries both again later. A disk that refuses the download (full, read-only) is
``OSError`` with its errno at once, as any write the disk refuses is: the daemon's disk trouble, not the track's.

No fetch reaches an internal address (``djamms_edge.shared.addresses``) unless its host is allowed in
``[edge.fetch] allowed_hosts``: a URL's host is resolved and checked here before a worker starts, and
the worker checks every connection yt-dlp opens.

``FakeFetcher`` serves local files under the same contract, for tests of code that needs a cache but not
the network.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import os
import random
import re
import shutil
import sys
import sysconfig
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from djamms_edge.edge.media import worker
from djamms_edge.edge.media.config import FetchConfig
from djamms_edge.shared.addresses import AddressPolicy, url_refusal
from djamms_edge.shared.ids import MediaSource
from djamms_edge.shared.song_details import MAX_ARTIST, MAX_TITLE, SongDetails, clean_duration, clean_text

log = logging.getLogger(__name__)


class FetchUnavailable(Exception):
    """The source is gone for good (removed, private, 404, not media, too large): do not retry."""


class FetchFailed(Exception):
    """Transient trouble (network, server errors) outlasted every attempt; a later try may work."""

    failure_class: FailureClass = "transient"

    def __init__(self, message: str, *, tool_version: str | None = None) -> None:
        super().__init__(message)
        self.tool_version = tool_version  # what the last attempt ran (None: the fetcher's version now)


class FetchRefused(FetchFailed):
    """YouTube refused this box (403, missing formats, a bot or sign-in check, a failed JS challenge) on every
    attempt: the box's environment, not the video. Tried again later, and at once after a yt-dlp update."""

    failure_class: FailureClass = "environment"


class AttemptFailed(Exception):
    """One attempt failed in a way a later one may not (``failure_class`` transient or environment)."""

    def __init__(self, message: str, failure_class: FailureClass = "transient") -> None:
        super().__init__(message)
        self.failure_class = failure_class


@dataclass(frozen=True, slots=True)
class Fetched:
    path: Path  # the final file: ``dest_stem`` plus the media's extension
    size: int
    title: str | None
    details: SongDetails | None = None  # artist and title as yt-dlp's info has them (shared/song_details.py)


class Fetcher(Protocol):
    @property
    def version(self) -> str:
        """Of the tool the next fetch will use (yt-dlp's): a failure may not repeat with another."""
        ...

    async def fetch(self, source: MediaSource, dest_stem: Path) -> Fetched:
        """Download ``source`` to ``dest_stem.<ext>``; raise FetchUnavailable or FetchFailed, or OSError (ENOSPC,
        EROFS) when the disk refuses the download."""
        ...

    async def describe(self, source: MediaSource) -> SongDetails | None:
        """What ``source`` is (artist, title, the site's length) without downloading it; None when the site says
        too little or the one try failed (nothing is retried here: a later look tries again)."""
        ...

    async def close(self) -> None: ...


# --- what a failure means (pure) ---------------------------------------------------------

FailureClass = Literal["unavailable", "environment", "transient"]

_HTTP_STATUS = re.compile(r"HTTP Error (\d{3})")
# YouTube refusing *this box*, not the video: no or an old JavaScript runtime (its player challenges fail,
# formats go missing, downloads get 403), a bot or sign-in check, a rate limit, a region or account the box
# lacks. A yt-dlp update, a runtime or simply time can fix each of these, so they are retried, never "gone".
# Checked first: "Video unavailable. This content isn't available, try again later" is a rate limit.
_ENVIRONMENT_PHRASES = (
    "not a bot",
    "sign in to confirm",  # "...you're not a bot", "...your age": a check of the session, not the video
    "captcha",
    "try again later",
    "rate-limited",
    "rate limit",
    "requested format is not available",
    "only images are available",
    "challenge solving failed",
    "javascript runtime",
    "challenge solver",
    "page needs to be reloaded",
    "members-only",
    "join this channel",
    "available in your country",
    "blocked it in your country",
)
# Only a clear "this video is gone" is permanent.
_GONE_PHRASES = (
    "video unavailable",
    "this video is unavailable",
    "no longer available",
    "has been removed",
    "private video",
    "account associated with this video has been terminated",
    "copyright",
    "drm protected",
    "unsupported url",
    "is not a valid url",
    "no video formats found",  # the generic extractor: the URL is a page, not media
)
_GONE_STATUSES = {400, 404, 410, 451}
_ENVIRONMENT_STATUSES = {401, 403, 429}


# The disk refusing the download, in the words of the OSError yt-dlp or the worker met.
_DISK_REFUSALS = {"no space left on device": errno.ENOSPC, "read-only file system": errno.EROFS,
                  "disk quota exceeded": errno.EDQUOT}


def disk_refusal(message: str) -> int | None:
    """The errno of a failure that was the disk refusing to store the download (full, read-only), else None."""
    lowered = message.lower()
    return next((code for words, code in _DISK_REFUSALS.items() if words in lowered), None)


def classify_failure(message: str) -> FailureClass:
    """What a yt-dlp error means: the source is gone for good, this box's environment is refused (a runtime,
    a yt-dlp update or time may fix it), or passing trouble (network, server errors)."""
    lowered = message.lower().replace("\u2019", "'")
    if any(phrase in lowered for phrase in _ENVIRONMENT_PHRASES):
        return "environment"
    status = _HTTP_STATUS.search(message)
    if status is not None:
        code = int(status.group(1))
        if code in _ENVIRONMENT_STATUSES:
            return "environment"
        return "unavailable" if code in _GONE_STATUSES else "transient"
    if any(phrase in lowered for phrase in _GONE_PHRASES):
        return "unavailable"
    return "transient"  # network errors, timeouts, truncated transfers, anything unknown: bounded retries


def backoff_seconds(attempt: int, base: float, rand: Callable[[], float] = random.random) -> float:
    """Delay before try ``attempt + 1``: base, 2 x base, 4 x base... each scaled by 0.5-1.5 so boxes don't sync up."""
    return base * (2 ** (attempt - 1)) * (0.5 + rand())


# yt-dlp format filters for each codec family, as YouTube and yt-dlp name them (avc1.4d401f, vp09.00.., vp9, av01..).
CODEC_FILTERS: dict[str, str] = {
    "avc1": "[vcodec^=avc1]",
    "hevc": "[vcodec~='^(hvc1|hev1|hevc|h265)']",
    "vp9": "[vcodec~='^vp0?9']",
    "av1": "[vcodec^=av01]",
}


def format_selector(config: FetchConfig) -> str:
    """yt-dlp format spec: audio only, or video no taller than ``max_height`` in the first of ``video_codecs``
    offered (with AAC audio beside H.264/HEVC, which every player pairs with them); a codec not listed only
    when the video offers none of those (``box_profile``: never AV1 on a Pi while anything else exists).

    ``<=?`` keeps formats whose height is unknown (a venue's direct media URL)."""
    if config.mode == "audio":
        return "ba[ext=m4a]/ba/b"
    h = config.max_height
    choices: list[str] = []
    for codec in config.video_codecs:
        only = f"[height<=?{h}]{CODEC_FILTERS[codec]}"
        if codec in ("avc1", "hevc"):
            choices.append(f"bv*{only}+ba[ext=m4a]")
        choices += [f"bv*{only}+ba", f"b{only}"]
    return "/".join([*choices, f"bv*[height<=?{h}]+ba", f"b[height<=?{h}]", "b"])


# --- the JavaScript runtime and the options every yt-dlp run gets -----------------------

# yt-dlp's runtime names and the executables they run.
JS_EXECUTABLES = {"deno": "deno", "node": "node", "bun": "bun", "quickjs": "qjs"}
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # what a system unit gets


def js_runtime_path(config: FetchConfig) -> str | None:
    """The executable yt-dlp solves YouTube's player challenges with: the configured one, else the one in this
    application's own environment (the ``deno`` wheel puts it beside the interpreter), else PATH's.

    Found here and handed to yt-dlp rather than left to its own PATH lookup: systemd starts the daemon with
    ``SYSTEMD_PATH``, which never holds the virtualenv's bin directory. None: there is none on this box."""
    if config.js_runtime_path:
        return config.js_runtime_path
    name = JS_EXECUTABLES[config.js_runtime]
    beside = Path(sysconfig.get_path("scripts")) / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def ytdlp_options(config: FetchConfig) -> dict[str, Any]:
    """The yt-dlp options of every run on this box (downloads, the doctor, the update self-test)."""
    path = js_runtime_path(config)
    return {
        "noplaylist": True,
        "allowed_extractors": ["youtube", "generic"],
        "js_runtimes": {config.js_runtime: {"path": path} if path else {}},
        "socket_timeout": config.socket_timeout_seconds,
        "retries": 3,  # resumes (HTTP Range) inside one attempt before we count a failure
        "fragment_retries": 3,
        "max_filesize": config.max_file_bytes,
        "cachedir": False,
        "quiet": True,
        "noprogress": True,
    }


@dataclass(frozen=True, slots=True)
class JsRuntimeInfo:
    name: str  # yt-dlp's name for it: deno, node, bun, quickjs
    path: str | None  # what was handed to yt-dlp; None: nothing found
    version: str | None  # None: it did not run (missing, not executable, wrong architecture)
    supported: bool  # this yt-dlp accepts that version
    minimum: str  # the oldest version this yt-dlp accepts ("" when unknown)


@dataclass(frozen=True, slots=True)
class YtDlpEnvironment:
    """What YouTube fetching needs, as this yt-dlp sees it (for ``djamms-edge doctor``)."""

    version: str  # yt-dlp's own version: a date, 2026.10.26
    location: str  # where it was imported from (the packaged venv, or the nightly update's directory)
    runtime: JsRuntimeInfo
    ejs_version: str | None  # the yt-dlp-ejs scripts package; None: not installed
    ejs_wanted: str | None  # the scripts version this yt-dlp accepts (major.minor must match)


def only_over_http(spec: str) -> str:
    """``spec`` with every format it names limited to plain HTTP(S) downloads (no HLS/ffmpeg, no RTMP)."""
    return "/".join("+".join(f"{part}[protocol^=http]" for part in choice.split("+")) for choice in spec.split("/"))


# --- the real thing ---------------------------------------------------------------------


def installed_version() -> str:
    """The version of the yt-dlp the next media worker will import, read from its source (importing it here
    would load it into the daemon): the first ``yt_dlp`` package on the path a worker starts with, its
    PYTHONPATH (the nightly update's ``current`` first) and then this interpreter's own.

    Looked up afresh on each call (once per attempt and per retry decision; a few stat calls and one small
    read, 60-80 us on a PC), by hand rather than with ``importlib.util.find_spec``: Python's import caches
    remember that ``current`` did not exist when the daemon started, so the first update would stay unseen."""
    from djamms_edge.edge.ytdlp_update import release_version

    pythonpath = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    for entry in ["", *pythonpath, *sys.path[1:]]:  # "" is the worker's working directory, as for python -m
        if os.path.isfile(os.path.join(entry, "yt_dlp", "__init__.py")):
            return release_version(Path(entry)) or "unknown"
    return "none"


async def probe_ytdlp(config: FetchConfig) -> YtDlpEnvironment:
    """This box's yt-dlp and JavaScript runtime as yt-dlp sees them (``ytdlp.ytdlp_environment``, in a
    worker); raises worker.WorkerFailed when yt-dlp cannot even be imported."""
    answer = await worker.run_job({"job": "ytdlp-environment", "config": dataclasses.asdict(config)},
                                  limit_seconds=60.0, what="yt-dlp's environment")
    try:
        found = dict(answer["ok"])
        return YtDlpEnvironment(**{**found, "runtime": JsRuntimeInfo(**found["runtime"])})
    except (KeyError, TypeError, ValueError) as exc:
        raise worker.WorkerFailed(f"yt-dlp's environment: the media worker answered nonsense ({exc!r})") from None


# Download workers running at once, whatever the queue holds. Each is ~50 MiB (Python and yt-dlp), and the
# prefetcher widens its window past every fetch in trouble: on a box whose network swallows packets, where every
# attempt waits out socket_timeout, it would start more every few seconds until a 1 GB Pi ran out of memory.
# One more than prefetch_count's default, so a healthy download still goes beside three stalled ones.
MAX_WORKERS = 4


class YtDlpFetcher:
    def __init__(
        self, config: FetchConfig, work_dir: Path, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        self._config = config
        self._work_dir = work_dir
        self._sleep = sleep
        self._policy = AddressPolicy.allowing(config.allowed_hosts)
        self._workers = asyncio.Semaphore(MAX_WORKERS)  # first come, first served

    @property
    def version(self) -> str:
        """The yt-dlp the next attempt's worker will import: a nightly update counts at once, no restart."""
        return installed_version()

    async def close(self) -> None:
        return None  # a running attempt's worker is killed by its cancelled caller

    async def fetch(self, source: MediaSource, dest_stem: Path) -> Fetched:
        if source.kind != "youtube":
            refusal = await url_refusal(source.url, self._policy)
            if refusal is not None:
                raise FetchUnavailable(refusal)
        attempts, loop = self._config.attempts, asyncio.get_running_loop()
        deadline = loop.time() + self._config.fetch_limit_seconds  # a slow trickle does not hold a slot for hours
        for attempt in range(1, attempts + 1):
            version = self.version  # read before the worker starts: an update may land while it runs
            try:
                fetched = await self._attempt(source, dest_stem, deadline)
            except AttemptFailed as exc:
                refused = disk_refusal(str(exc))
                if refused is not None:  # another try fills the same disk: the cache's caller pauses and says why
                    log.info("fetching %s: %s", source.key, exc)
                    raise OSError(refused, f"the download of {source.key} cannot be stored") from None
                delay = backoff_seconds(attempt, self._config.retry_base_seconds)
                out_of_time = loop.time() + delay >= deadline
                if attempt == attempts or out_of_time:
                    failed = FetchRefused if exc.failure_class == "environment" else FetchFailed
                    limit = f" in fetch_limit_seconds ({self._config.fetch_limit_seconds:.0f}s)" if out_of_time else ""
                    tries = "1 try" if attempt == 1 else f"{attempt} tries"
                    message = f"{source.key}: {exc} (gave up after {tries}{limit})"
                    raise failed(message, tool_version=version) from None
                if attempt == 1:  # one line for the trouble; the outcome is logged by whoever called us
                    log.warning("fetching %s failed (%s); retrying with backoff", source.key, exc)
                await self._sleep(delay)
                continue
            if attempt > 1:
                log.info("fetched %s after %d tries", source.key, attempt)
            return fetched
        raise AssertionError("unreachable")

    async def describe(self, source: MediaSource) -> SongDetails | None:
        if source.kind != "youtube" and await url_refusal(source.url, self._policy) is not None:
            return None
        request = {"job": "describe", "config": dataclasses.asdict(self._config), "source": source.key}
        try:
            async with self._workers:
                answer = await worker.run_job(request, limit_seconds=self._config.attempt_limit_seconds,
                                              what="details")
        except worker.WorkerFailed as exc:
            log.info("could not look up what %s is: %s", source.key, exc)
            return None
        if "error" in answer:
            log.info("could not look up what %s is: %s", source.key, answer.get("message"))
            return None
        return _details(answer.get("ok"))

    async def _attempt(self, source: MediaSource, dest_stem: Path, deadline: float) -> Fetched:
        """One try in a worker (``ytdlp.fetch_job``), killed at ``attempt_limit_seconds`` or at the fetch's
        ``deadline`` (loop time), whichever comes first; cancelling kills the worker. Its scratch goes either way."""
        scratch = self._work_dir / uuid.uuid4().hex
        request = {"job": "fetch", "config": dataclasses.asdict(self._config), "source": source.key,
                   "scratch": str(scratch), "dest_stem": str(dest_stem)}
        try:
            async with self._workers:
                left = deadline - asyncio.get_running_loop().time()  # waiting for a slot counts too
                if left <= 0:
                    raise AttemptFailed("no time left to try")
                answer = await worker.run_job(request, limit_seconds=min(self._config.attempt_limit_seconds, left),
                                              what="download")  # fetch() names the source
        except worker.WorkerFailed as exc:
            raise AttemptFailed(str(exc)) from None
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, True)
        return await asyncio.to_thread(_fetched, answer, dest_stem)  # it looks at the file


def _fetched(answer: worker.Reply, dest_stem: Path) -> Fetched:
    """The worker's answer, believed only as far as it names a file this attempt was asked to make, and that
    file is there at the size it says (else the cache would analyse nothing and call the track broken)."""
    error = answer.get("error")
    if error is not None:
        message = str(answer.get("message", ""))
        if error == "unavailable":
            raise FetchUnavailable(message)
        raise AttemptFailed(message, "environment" if error == "environment" else "transient")
    try:
        found = answer["ok"]
        path, size, title = Path(found["path"]), found["size"], found["title"]
        if (path.parent != dest_stem.parent or not path.name.startswith(f"{dest_stem.name}.")
                or not isinstance(size, int) or not (title is None or isinstance(title, str))):
            raise ValueError(found)
        details = _details(found.get("details"))
    except (KeyError, TypeError, ValueError) as exc:
        raise AttemptFailed(f"the media worker answered nonsense ({exc!r})") from None
    try:
        on_disk: int | None = path.stat().st_size if path.is_file() else None
    except OSError:
        on_disk = None
    if on_disk != size:
        found = "no such file" if on_disk is None else f"the file has {on_disk}"
        raise AttemptFailed(f"the media worker answered {path.name} of {size} bytes, but {found}")
    return Fetched(path, size, title, details)


def _details(found: object) -> SongDetails | None:
    """The worker's ``details``, cleaned again (a worker is believed no more than it must be); None when absent
    or empty after cleaning: a song without details is still a good download."""
    if not isinstance(found, dict):
        return None
    artist, title = clean_text(found.get("artist"), MAX_ARTIST), clean_text(found.get("title"), MAX_TITLE)
    return SongDetails(artist, title, clean_duration(found.get("duration"))) if artist and title else None


# --- the fake ---------------------------------------------------------------------------


class FakeFetcher:
    """Serves local files by source key under the Fetcher contract (atomic, unavailable for unknown keys)."""

    def __init__(
        self, files: Mapping[str, Path], *, transient_failures: int = 0, refusals: int = 0, version: str = "fake-1",
        details: Mapping[str, SongDetails] | None = None,
    ) -> None:
        self._files = dict(files)
        self._details = dict(details or {})  # what the fake's "site" says each source is
        self._transient_failures = transient_failures
        self.refusals = refusals  # fetches answered like YouTube refusing the box (FetchRefused)
        self.version = version
        self.fetched: list[str] = []
        self.described: list[str] = []

    async def fetch(self, source: MediaSource, dest_stem: Path) -> Fetched:
        original = self._files.get(source.key)
        if original is None:
            raise FetchUnavailable(f"{source.key}: unknown to the fake")
        if self._transient_failures > 0:
            self._transient_failures -= 1
            raise FetchFailed(f"{source.key}: simulated network trouble")
        if self.refusals > 0:
            self.refusals -= 1
            raise FetchRefused(f"{source.key}: HTTP Error 403: Forbidden (simulated)")
        final = dest_stem.with_name(f"{dest_stem.name}{original.suffix}")
        scratch = final.with_name(f".{final.name}.{uuid.uuid4().hex}")
        await asyncio.to_thread(shutil.copyfile, original, scratch)
        await asyncio.to_thread(os.replace, scratch, final)
        self.fetched.append(source.key)
        return Fetched(final, original.stat().st_size, original.stem, self._details.get(source.key))

    async def describe(self, source: MediaSource) -> SongDetails | None:
        self.described.append(source.key)
        return self._details.get(source.key)

    async def close(self) -> None:
        return None
