"""The only module that uses yt-dlp: download one source into the cache directory.

yt-dlp runs through its Python API (never a shell, never an interpolated string)
in a worker thread, so the event loop never waits on the network. Each attempt
downloads into its own scratch directory under ``work_dir`` (on the cache's file
system) and the finished file is moved to its final name with one atomic rename:
a crash or a kill at any moment leaves only scratch, which ``MediaCache`` removes
on start. Only a clearly removed/private/missing video is ``FetchUnavailable`` (at once);
YouTube refusing this box (403, missing formats, bot/sign-in checks, failed JS challenges)
is retried with exponential backoff and jitter, then ``FetchRefused``; network trouble the
same way, then ``FetchFailed``. The cache tries both again later.

No fetch reaches an internal address (``djamms_edge.shared.addresses``) unless its host is
allowed in ``[edge.fetch] allowed_hosts``: a URL's host is resolved and checked before
anything is sent, and every connection yt-dlp opens (redirects, fragments) is checked on the
address it is about to connect to. A URL's media must come over HTTP(S) (yt-dlp's own
downloader), never through ffmpeg, which would connect where we cannot check.

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
import sysconfig
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import yt_dlp

from djamms_edge.edge.media.config import FetchConfig
from djamms_edge.shared.addresses import AddressPolicy, url_refusal
from djamms_edge.shared.ids import MediaSource

log = logging.getLogger(__name__)


class FetchUnavailable(Exception):
    """The source is gone for good (removed, private, 404, not media, too large): do not retry."""


class FetchFailed(Exception):
    """Transient trouble (network, server errors) outlasted every attempt; a later try may work."""

    failure_class: FailureClass = "transient"


class FetchRefused(FetchFailed):
    """YouTube refused this box (403, missing formats, a bot or sign-in check, a failed JS challenge) on every
    attempt: the box's environment, not the video. Tried again later, and at once after a yt-dlp update."""

    failure_class: FailureClass = "environment"


@dataclass(frozen=True, slots=True)
class Fetched:
    path: Path  # the final file: ``dest_stem`` plus the media's extension
    size: int
    title: str | None


class Fetcher(Protocol):
    version: str  # of the tool that fetches (yt-dlp's): a failure may not repeat with another

    async def fetch(self, source: MediaSource, dest_stem: Path) -> Fetched:
        """Download ``source`` to ``dest_stem.<ext>``; raise FetchUnavailable or FetchFailed."""
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


def ytdlp_environment(config: FetchConfig) -> YtDlpEnvironment:
    """Ask yt-dlp itself (its runtime classes run ``<runtime> --version``; blocking, well under a second)."""
    from yt_dlp.dependencies import yt_dlp_ejs
    from yt_dlp.globals import supported_js_runtimes

    path = js_runtime_path(config)
    runtime_class = supported_js_runtimes.value.get(config.js_runtime)
    if runtime_class is None:
        runtime = JsRuntimeInfo(config.js_runtime, path, None, False, "")
    else:
        info = runtime_class(path=path).info if path else None
        minimum = ".".join(str(part) for part in getattr(runtime_class, "MIN_SUPPORTED_VERSION", ()))
        runtime = JsRuntimeInfo(config.js_runtime, path, info.version if info else None,
                                bool(info and info.supported), minimum)
    try:
        from yt_dlp.extractor.youtube.jsc._builtin.vendor import VERSION as ejs_wanted
    except ImportError:  # a yt-dlp whose layout changed: the doctor says nothing about the match
        ejs_wanted = None
    return YtDlpEnvironment(
        version=yt_dlp.version.__version__,
        location=str(Path(yt_dlp.__file__).parent),
        runtime=runtime,
        ejs_version=getattr(yt_dlp_ejs, "version", None) if yt_dlp_ejs else None,
        ejs_wanted=ejs_wanted,
    )


def only_over_http(spec: str) -> str:
    """``spec`` with every format it names limited to plain HTTP(S) downloads (no HLS/ffmpeg, no RTMP)."""
    return "/".join("+".join(f"{part}[protocol^=http]" for part in choice.split("+")) for choice in spec.split("/"))


# --- no connection to an internal address -------------------------------------------------

_guard = threading.local()  # per download thread: the fetcher's policy, and the refusal if the guard tripped
_STRICT = AddressPolicy()  # for a connection from a thread no fetcher set up (yt-dlp's own helpers)


def _checked(create_connection: Callable[..., Any]) -> Callable[..., Any]:
    """yt-dlp's ``create_connection`` (it resolves the name and tries each address in turn), checking each
    address before its socket connects: a refused address is never connected to, and no later DNS answer
    can change what was checked."""
    from yt_dlp.networking._helper import _socket_connect

    def create_checked_connection(address: tuple[str, int], *args: Any,
                                  _create_socket_func: Callable[..., Any] = _socket_connect, **kwargs: Any) -> Any:
        host = str(address[0])
        policy: AddressPolicy = getattr(_guard, "policy", _STRICT)

        def connect(ip_addr: tuple[Any, ...], *rest: Any) -> Any:
            refusal = policy.refusal(host, str(ip_addr[4][0]))
            if refusal is not None:
                _guard.refusal = refusal
                raise OSError(refusal)
            return _create_socket_func(ip_addr, *rest)

        return create_connection(address, *args, _create_socket_func=connect, **kwargs)

    return create_checked_connection


def _guard_connections() -> bool:
    """Put the check into yt-dlp's urllib handler (the only handler ``_GuardedYoutubeDL`` uses); False if that
    handler no longer connects the way this expects (a yt-dlp update): then no media URL is fetched."""
    from yt_dlp.networking import _helper, _urllib

    original: Callable[..., Any] = _helper.create_connection
    if getattr(_urllib, "create_connection", None) is not original:
        log.error("this yt-dlp connects in a way djamms-edge cannot check: media URLs will not be fetched")
        return False
    setattr(_urllib, "create_connection", _checked(original))  # noqa: B010 -- yt-dlp's own name for it
    return True


class _GuardedYoutubeDL(yt_dlp.YoutubeDL):
    """yt-dlp with its urllib handler only: the requests, curl_cffi and websockets handlers (present when their
    libraries are) would connect through their own code, around the check."""

    def build_request_director(self, handlers: Any, preferences: Any = None) -> Any:
        return super().build_request_director([h for h in handlers if h.RH_KEY == "Urllib"], preferences)


CONNECTIONS_GUARDED = _guard_connections()


# --- the real thing ---------------------------------------------------------------------


class _Cancelled(Exception):
    """Raised inside yt-dlp's progress hook to stop a download whose caller went away."""


class _QuietLogger:
    """yt-dlp's chatter goes to our DEBUG; our own log says what happened, once.

    Warnings are also kept: YouTube's JS challenge failures are only warnings, and the error that follows
    ("Requested format is not available") does not say why; the failure message carries them."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    info = error = debug

    def warning(self, msg: str) -> None:
        self.debug(msg)
        self.warnings.append(_clean(msg))


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
        self.version: str = yt_dlp.version.__version__
        self._policy = AddressPolicy.allowing(config.allowed_hosts)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown, True)

    async def fetch(self, source: MediaSource, dest_stem: Path) -> Fetched:
        if source.kind != "youtube":
            if not CONNECTIONS_GUARDED:
                raise FetchFailed(f"{source.key}: this yt-dlp cannot be kept from internal addresses; media URLs "
                                  "wait for an update of djamms-edge")
            refusal = await url_refusal(source.url, self._policy)
            if refusal is not None:
                raise FetchUnavailable(refusal)
        attempts = self._config.attempts
        for attempt in range(1, attempts + 1):
            try:
                fetched = await self._attempt(source, dest_stem)
            except _TransientError as exc:
                if attempt == attempts:
                    failed = FetchRefused if exc.failure_class == "environment" else FetchFailed
                    raise failed(f"{source.key}: {exc} (gave up after {attempts} tries)") from None
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
        job = loop.run_in_executor(self._pool, self._download, source, scratch, dest_stem, cancel)
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

    def _download(self, source: MediaSource, scratch: Path, dest_stem: Path, cancel: threading.Event) -> Fetched:
        scratch.mkdir(parents=True)
        url = source.url
        _guard.policy, _guard.refusal = self._policy, None

        def hook(_progress: Mapping[str, Any]) -> None:
            if cancel.is_set():
                raise _Cancelled

        logger = _QuietLogger()
        spec = format_selector(self._config)
        params: dict[str, Any] = {
            **ytdlp_options(self._config),
            "format": spec if source.kind == "youtube" else only_over_http(spec),
            "outtmpl": {"default": "media.%(ext)s"},
            "paths": {"home": str(scratch), "temp": str(scratch)},
            "merge_output_format": "mp4" if self._config.mode == "video" else None,
            "logger": logger,
            "progress_hooks": [hook],
        }
        try:
            with _GuardedYoutubeDL(params) as ydl:
                info = ydl.extract_info(url, download=True)
        except yt_dlp.utils.DownloadError as exc:
            if cancel.is_set():
                raise _Cancelled from None
            if _guard.refusal is not None:  # a redirect (or a name) led to an internal address
                raise FetchUnavailable(_guard.refusal) from None
            message = _with_reasons(_clean(str(exc)), logger.warnings)
            failure = classify_failure(message)
            if failure == "unavailable":
                raise FetchUnavailable(message) from None
            raise _TransientError(message, failure) from None
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
    def __init__(self, message: str, failure_class: FailureClass = "transient") -> None:
        super().__init__(message)
        self.failure_class = failure_class


# Warnings that explain a YouTube failure better than its final error does.
_REASON_WARNINGS = ("challenge solving failed", "javascript runtime", "challenge solver", "http error 403")


def _with_reasons(message: str, warnings: list[str]) -> str:
    reasons = [w for w in warnings if any(phrase in w.lower() for phrase in _REASON_WARNINGS)]
    return f"{message} (after: {'; '.join(dict.fromkeys(reasons))})" if reasons else message


def _clean(message: str) -> str:
    return re.sub(r"^ERROR:\s*", "", message.replace("\r", "")).strip()


def _safe_ext(suffix: str) -> str:
    ext = suffix.lstrip(".").lower()
    return ext if re.fullmatch(r"[a-z0-9]{1,5}", ext) else "bin"


# --- the fake ---------------------------------------------------------------------------


class FakeFetcher:
    """Serves local files by source key under the Fetcher contract (atomic, unavailable for unknown keys)."""

    def __init__(
        self, files: Mapping[str, Path], *, transient_failures: int = 0, refusals: int = 0, version: str = "fake-1"
    ) -> None:
        self._files = dict(files)
        self._transient_failures = transient_failures
        self.refusals = refusals  # fetches answered like YouTube refusing the box (FetchRefused)
        self.version = version
        self.fetched: list[str] = []

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
        return Fetched(final, original.stat().st_size, original.stem)

    async def close(self) -> None:
        return None
