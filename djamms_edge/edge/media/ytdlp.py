"""The only module that imports yt-dlp. It runs in a media worker process (``worker``), never in the daemon's:
yt-dlp costs the player ~30 MB it would keep for good, and a crash or a leak in it takes one worker with it,
not the music. ``YtDlpFetcher`` (``fetcher``) asks a worker for each attempt (``fetch_job``) and for the
doctor's view of this yt-dlp (``environment_job``).

One attempt downloads into its scratch directory and moves the finished file to its final name with one
atomic rename: a worker killed at any moment leaves only scratch, which the caller removes.

No connection reaches an internal address (``djamms_edge.shared.addresses``) unless its host is allowed in
``[edge.fetch] allowed_hosts``: every connection yt-dlp opens (redirects, fragments) is checked on the
address it is about to connect to. A URL's media must come over HTTP(S) (yt-dlp's own downloader), never
through ffmpeg, which would connect where we cannot check.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yt_dlp

from djamms_edge.edge.media.config import FetchConfig
from djamms_edge.edge.media.fetcher import (
    AttemptFailed,
    FetchUnavailable,
    JsRuntimeInfo,
    YtDlpEnvironment,
    classify_failure,
    disk_refusal,
    format_selector,
    js_runtime_path,
    only_over_http,
    ytdlp_options,
)
from djamms_edge.edge.media.worker import Reply, Request, config_from_json
from djamms_edge.shared.addresses import AddressPolicy
from djamms_edge.shared.ids import MediaSource, parse_source
from djamms_edge.shared.song_details import describe

log = logging.getLogger(__name__)


# --- the jobs a media worker runs ------------------------------------------------------------


def fetch_job(request: Request) -> Reply:
    """One download attempt: ``{"ok": {"path", "size", "title", "details"}}`` or ``{"error": failure class,
    "message"}``; ``details``: ``{"artist", "title", "duration"}`` as ``song_details.describe`` read yt-dlp's info
    (the site's duration; the daemon puts its measured one in), or null when the info says too little."""
    config = config_from_json(FetchConfig, request["config"])
    source = parse_source(request["source"])
    try:
        path, size, info = download(config, source, Path(request["scratch"]), Path(request["dest_stem"]))
    except FetchUnavailable as exc:
        return {"error": "unavailable", "message": str(exc)}
    except AttemptFailed as exc:
        return {"error": exc.failure_class, "message": str(exc)}
    details = describe(info)
    title = info.get("title")
    return {"ok": {"path": str(path), "size": size, "title": title if isinstance(title, str) else None,
                   "details": None if details is None else dataclasses.asdict(details)}}


def describe_job(request: Request) -> Reply:
    """What a video is, read without downloading it: ``{"ok": {"artist", "title", "duration"} or null}`` (the
    site's duration) or ``{"error": failure class, "message"}``. Background work beside the music: at nice 19,
    with the JavaScript runtime yt-dlp starts for YouTube's challenges."""
    os.nice(19 - os.nice(0))
    config = config_from_json(FetchConfig, request["config"])
    try:
        info = _extract(config, parse_source(request["source"]), download=False)
    except FetchUnavailable as exc:
        return {"error": "unavailable", "message": str(exc)}
    except AttemptFailed as exc:
        return {"error": exc.failure_class, "message": str(exc)}
    details = describe(info)
    return {"ok": None if details is None else dataclasses.asdict(details)}


def environment_job(request: Request) -> Reply:
    return {"ok": dataclasses.asdict(ytdlp_environment(config_from_json(FetchConfig, request["config"])))}


# --- what this yt-dlp needs -----------------------------------------------------------------


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



# --- no connection to an internal address -------------------------------------------------

_guard = threading.local()  # the download's policy, and the refusal if the guard tripped
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


# --- one download ------------------------------------------------------------------------


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


def download(config: FetchConfig, source: MediaSource, scratch: Path, dest_stem: Path
             ) -> tuple[Path, int, dict[str, Any]]:
    """Download ``source`` to ``dest_stem.<ext>`` through ``scratch``: the final path, its size and yt-dlp's info.
    Raises FetchUnavailable (gone, or an internal address) or AttemptFailed (anything a later try may fix)."""
    scratch.mkdir(parents=True)
    info = _extract(config, source, download=True, outtmpl={"default": "media.%(ext)s"},
                    paths={"home": str(scratch), "temp": str(scratch)},
                    merge_output_format="mp4" if config.mode == "video" else None)
    files = [p for p in scratch.iterdir() if p.is_file() and not p.name.endswith((".part", ".ytdl"))]
    if len(files) != 1:
        raise FetchUnavailable("nothing downloadable (too large, or not media)")
    final = dest_stem.with_name(f"{dest_stem.name}.{_safe_ext(files[0].suffix)}")
    size = files[0].stat().st_size
    try:
        os.replace(files[0], final)  # atomic: the cache sees a whole file or none
    except OSError as exc:
        raise AttemptFailed(f"cannot store the download: {exc}") from None
    return final, size, info


def _extract(config: FetchConfig, source: MediaSource, *, download: bool, **params: Any) -> dict[str, Any]:
    """yt-dlp's info for ``source`` (downloading it with ``download``, as ``params`` say), through the address
    guard. Raises FetchUnavailable (gone, or an internal address) or AttemptFailed (a later try may work)."""
    if source.kind != "youtube" and not CONNECTIONS_GUARDED:
        raise AttemptFailed(f"{source.key}: this yt-dlp cannot be kept from internal addresses; media URLs "
                            "wait for an update of djamms-edge")
    _guard.policy, _guard.refusal = AddressPolicy.allowing(config.allowed_hosts), None
    logger = _QuietLogger()
    spec = format_selector(config)
    options = {**ytdlp_options(config), "format": spec if source.kind == "youtube" else only_over_http(spec),
               "logger": logger, **params}
    try:
        with _GuardedYoutubeDL(options) as ydl:
            info = ydl.extract_info(source.url, download=download)
    except yt_dlp.utils.DownloadError as exc:
        if _guard.refusal is not None:  # a redirect (or a name) led to an internal address
            raise FetchUnavailable(_guard.refusal) from None
        message = _with_reasons(_clean(str(exc)), logger.warnings)
        failure = classify_failure(message)
        if failure == "unavailable":
            raise FetchUnavailable(message) from None
        raise AttemptFailed(message, failure) from None
    except Exception as exc:  # yt-dlp's internals or the disk (full, read-only): a later try may work
        # The disk's trouble is the daemon's to report (fetcher.disk_refusal); anything else, with its traceback.
        log.warning("yt-dlp failed unexpectedly on %s", source.url, exc_info=disk_refusal(str(exc)) is None)
        raise AttemptFailed(f"{type(exc).__name__}: {exc}") from None
    if not isinstance(info, dict):
        raise FetchUnavailable("nothing downloadable (too large, or not media)")
    return info


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


