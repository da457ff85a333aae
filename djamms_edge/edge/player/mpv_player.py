"""The only module that imports ``mpv``: the ``Player`` interface on libmpv (python-mpv).

How the pieces map:
* each ``PlaybackItem`` is one mpv playlist entry, appended with per-file options ``start``/``end``
  (the cue offsets) and, for a non-zero gain, ``af=volume=…dB``; mpv restores them after the file;
* ``gapless-audio=yes`` keeps the audio device open across files and ``prefetch-playlist=yes`` opens
  the next file while the current one ends, so the next entry must be in the playlist before the
  current one finishes: the engine hands it over when the current one starts;
* python-mpv calls back on its own event thread. ``_from_mpv_thread`` is the one place where
  that thread meets asyncio: it copies the few fields we need and hands them to the loop with
  ``call_soon_threadsafe``; all bookkeeping happens on the loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import mpv

from djamms_edge.edge.player.api import Ended as EndedEvent
from djamms_edge.edge.player.api import EndReason, EventSink, Failed, PlaybackItem, PlayerEvent, Started
from djamms_edge.edge.player.config import PlayerConfig
from djamms_edge.edge.player.request_qr import CANVAS_H, CANVAS_W, QrPlacement, RequestQr, ass_events

log = logging.getLogger(__name__)
mpv_log = logging.getLogger("djamms_edge.mpv")

_FORWARDED_EVENTS = frozenset({"start-file", "file-loaded", "end-file"})
_FADE_STEP_SECONDS = 0.02
# One frame at 24 fps, the slowest common music-video frame rate (see file_options).
VIDEO_START_LEAD_SECONDS = 0.042
_QR_OVERLAY_ID = 1  # our osd-overlay id (ids are per client; show-text messages are a separate layer)


# mpv's built-in scripts a venue box never shows (the stats overlay, the console, profile conditions): each is a
# Lua interpreter and a thread, ~5 MB of the daemon's memory together. Optional: a libmpv that does not know
# one (a later release renames it) starts without it rather than not at all.
LEAN_OPTIONS = {"load-stats-overlay": "no", "load-osd-console": "no", "load-auto-profiles": "no"}


def mpv_options(config: PlayerConfig, video: bool | None = None) -> dict[str, str]:
    """The options the player is created with (pure, so a test can show what a config turns into).

    ``video`` overrides ``config.video`` (False: the audio-only fallback when no screen can be opened).
    """
    video = config.video if video is None else video
    options = {
        # Never read the user's mpv.conf or scripts, never run youtube-dl: the box is reproducible.
        "config": "no",
        "load-scripts": "no",
        "ytdl": "no",
        "terminal": "no",
        "input-default-bindings": "no",
        "input-vo-keyboard": "no",
        "osc": "no",
        "idle": "yes",
        "gapless-audio": "yes",
        "prefetch-playlist": "yes",
        "audio-display": "no",  # cover art is not a music video
        "replaygain": "no",  # our measured gain is the only levelling
        **LEAN_OPTIONS,
        "volume": f"{config.volume:g}",
    }
    if video:
        # force-window=immediate opens the screen at start: black between and after tracks (never the
        # desktop), and a video output that cannot open fails here, once, instead of failing every track.
        # hwdec empty: not chosen (the daemon fills it in from the box profile): mpv's safe automatic choice.
        options |= {"vo": config.vo, "hwdec": config.hwdec or "auto-safe",
                    "fullscreen": "yes" if config.fullscreen else "no", "force-window": "immediate"}
    else:
        options |= {"vid": "no", "vo": "null"}
    if config.ao:
        options["ao"] = config.ao
    if config.audio_device:
        options["audio-device"] = config.audio_device
    for pair in config.mpv_options:
        name, _, value = pair.partition("=")
        options[name.strip()] = value.strip()
    return options


def _unknown_option(exc: AttributeError) -> str | None:
    """The option python-mpv's AttributeError("mpv option does not exist", code, (handle, name, value)) names."""
    try:
        name = exc.args[2][1]
    except (IndexError, TypeError):
        return None
    return name.decode() if isinstance(name, bytes) else None


def file_options(item: PlaybackItem, video: bool = False) -> str:
    """Per-file options for ``loadfile``: cue offsets and gain, restored by mpv after the file.

    With video, mpv starts the audio at the first video frame at or after ``start`` (A/V sync), which
    would cut up to a frame of the first sound; starting one frame earlier keeps the attack whole.
    """
    start = max(0.0, item.start - VIDEO_START_LEAD_SECONDS) if video and item.start > 0 else item.start
    options = [f"start={start:.3f}"]
    if item.end is not None:
        options.append(f"end={item.end:.3f}")
    if item.gain_db:
        options.append(f"af=volume=volume={item.gain_db:.2f}dB")
    return ",".join(options)


class MpvPlayer:
    def __init__(self, config: PlayerConfig) -> None:
        self._config = config
        self._mpv: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_event: EventSink | None = None
        self._items: dict[int, PlaybackItem] = {}  # mpv playlist entry id -> item, until it ends
        self._upcoming: list[int] = []  # handed over, not started, in play order
        self._loading: int | None = None  # start-file seen, file-loaded not yet
        self._current: int | None = None  # started and not ended
        self._end_reasons: dict[int, EndReason] = {}  # why we cut an entry short
        self._volume = config.volume
        self._video = config.video
        self._closing = False
        self._probe: asyncio.Future[Any] | None = None
        self._qr: RequestQr | None = None
        self._qr_placement: QrPlacement | None = None
        self._qr_timer: asyncio.TimerHandle | None = None
        self._qr_corner_left: float | None = None  # paused with the corner code up: the seconds it has left

    async def open(self, on_event: EventSink) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_event = on_event
        try:
            self._mpv = await asyncio.to_thread(self._create, self._video)
        except Exception as exc:  # python-mpv raises several types for "mpv_initialize failed"
            if not self._video:
                raise
            # No screen (unplugged, no DRM device, no display server): the venue still gets its music.
            reason = exc.args[0] if exc.args else exc
            log.warning("video output %r cannot be opened (%s): playing audio only", self._config.vo, reason)
            self._video = False
            self._mpv = await asyncio.to_thread(self._create, self._video)
        self._mpv.register_event_callback(self._from_mpv_thread)
        log.info("libmpv %s ready (%s)", self._mpv.mpv_version, "video" if self._video else "audio only")

    def _create(self, video: bool) -> Any:
        options = mpv_options(self._config, video)
        while True:
            try:
                return mpv.MPV(log_handler=self._log_from_mpv, loglevel="warn", **options)
            except AttributeError as exc:  # python-mpv's "mpv option does not exist", with the option's name
                unknown = _unknown_option(exc)
                if unknown not in LEAN_OPTIONS or unknown not in options:
                    raise
                log.info("this libmpv has no option %s: starting without it", unknown)
                del options[unknown]

    async def close(self) -> None:
        if self._mpv is None or self._closing:
            return
        self._closing = True
        if self._qr_timer is not None:
            self._qr_timer.cancel()
        # terminate() joins mpv's threads; never make the loop wait on that.
        await asyncio.to_thread(self._mpv.terminate)

    # --- mpv's thread ---------------------------------------------------------

    def _from_mpv_thread(self, event: Any) -> None:
        data = event.as_dict(decoder=mpv.lazy_decoder)
        if data.get("event") not in _FORWARDED_EVENTS or self._loop is None:
            return
        # RuntimeError: the loop is closed, we are shutting down and nobody listens any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._on_mpv_event, data)

    @staticmethod
    def _log_from_mpv(level: str, prefix: str, text: str) -> None:
        # mpv says several lines per broken file; the engine logs the one line that matters.
        mpv_log.debug("[%s] %s: %s", level, prefix, text.rstrip())

    # --- the loop's thread ----------------------------------------------------

    def _on_mpv_event(self, data: dict[str, Any]) -> None:
        if self._closing:
            return
        name = data["event"]
        if name == "start-file":
            entry = data["playlist_entry_id"]
            self._loading = entry
            if entry in self._upcoming:
                self._upcoming.remove(entry)
        elif name == "file-loaded":
            if self._loading is not None and self._loading in self._items:
                self._current, self._loading = self._loading, None
                self._emit(Started(self._items[self._current].play_id))
                self._song_started_qr()
        elif name == "end-file":
            self._on_end_file(data["playlist_entry_id"], data.get("reason", ""), data.get("file_error"))

    def _on_end_file(self, entry: int, reason: str, error: Any) -> None:
        item = self._items.pop(entry, None)
        override = self._end_reasons.pop(entry, None)
        started = entry == self._current
        if started:
            self._current = None
        if self._loading == entry:
            self._loading = None
        self._forget_entries([entry])
        if self._current is None and self._loading is None and not self._upcoming:
            self._place_qr(QrPlacement.SCREEN if self._qr else None)
        if item is None:
            return
        if reason == "error":
            self._emit(Failed(item.play_id, str(error or "mpv could not play it")))
        elif started:
            self._emit(EndedEvent(item.play_id, override or (EndReason.FINISHED if reason == "eof" else
                                                              EndReason.STOPPED)))

    def _emit(self, event: PlayerEvent) -> None:
        assert self._on_event is not None
        self._on_event(event)

    # --- Player ---------------------------------------------------------------

    def set_upcoming(self, items: Sequence[PlaybackItem]) -> None:
        playing = {self._items[e].play_id for e in (self._current, self._loading) if e in self._items}
        items = [item for item in items if item.play_id not in playing]
        keep = 0
        while keep < min(len(items), len(self._upcoming)) and self._items[self._upcoming[keep]] == items[keep]:
            keep += 1
        dropped = self._upcoming[keep:]
        self._upcoming = self._upcoming[:keep]
        still_playing = self._forget_entries(dropped)
        for entry in dropped:
            if entry not in still_playing:
                self._items.pop(entry, None)
        for item in items[keep:]:
            options = file_options(item, self._video)
            result = self._mpv.command("loadfile", str(item.path), "append-play", options)
            entry = int(result["playlist_entry_id"])
            self._items[entry] = item
            self._upcoming.append(entry)

    def _forget_entries(self, entries: Sequence[int]) -> set[int]:
        """Take entries out of mpv's playlist (it keeps played ones forever), never the playing one.

        Returns the entries left in because mpv has just started one of them (its start-file event is
        still on the way to the loop): they stay tracked, so their Started/Ended events are not lost.
        """
        if not entries:
            return set()
        wanted, playing = set(entries), set()
        playlist = self._mpv.playlist
        for index in reversed(range(len(playlist))):
            row = playlist[index]
            if row.get("id") not in wanted:
                continue
            if row.get("current") or row.get("playing"):
                playing.add(row["id"])
            else:
                self._mpv.command("playlist-remove", str(index))
        return playing

    async def skip(self, fade_seconds: float) -> None:
        target = self._current
        if target is None:
            return
        steps = max(1, round(fade_seconds / _FADE_STEP_SECONDS))
        try:
            for step in range(1, steps + 1):
                if self._current != target:
                    return  # it ended by itself during the fade
                self._mpv.volume = self._volume * (1 - step / steps)
                await asyncio.sleep(fade_seconds / steps)
            if self._current == target:
                self._end_reasons[target] = EndReason.SKIPPED
                self._mpv.command("playlist-next", "force")
        finally:
            self._mpv.volume = self._volume

    def stop(self) -> None:
        if self._current is not None:
            self._end_reasons[self._current] = EndReason.STOPPED
        for entry in self._upcoming:
            self._items.pop(entry, None)
        self._upcoming.clear()
        self._mpv.command("stop")

    def show_request_qr(self, qr: RequestQr | None) -> None:
        self._qr = qr
        idle = self._current is None and self._loading is None
        self._place_qr(None)  # redrawn for a new URL
        self._place_qr(QrPlacement.SCREEN if qr and idle else None)

    @property
    def request_qr(self) -> QrPlacement | None:
        return self._qr_placement

    def _song_started_qr(self) -> None:
        self._qr_corner_left = None
        if self._qr is None:
            return
        if self._qr.song_start_s <= 0:
            self._place_qr(None)
            return
        self._place_qr(QrPlacement.CORNER)
        self._arm_corner_timer(self._qr.song_start_s)

    def _arm_corner_timer(self, seconds: float) -> None:
        if self._qr_timer is not None:
            self._qr_timer.cancel()
        assert self._loop is not None
        self._qr_timer = self._loop.call_later(seconds, self._hide_corner_qr)

    def _hide_corner_qr(self) -> None:
        if self._qr_placement is QrPlacement.CORNER:  # not if the song ended and the screen shows it large
            self._place_qr(None)

    def _place_qr(self, placement: QrPlacement | None) -> None:
        if placement == self._qr_placement or self._closing:
            return
        self._qr_placement = placement
        if placement is None or self._qr is None:
            self._mpv.command("osd-overlay", _QR_OVERLAY_ID, "none", "")
        else:
            # ASS vector drawing: sharp at any screen size, no image file, rendered by libmpv's OSD over the
            # video and over the black idle window (force-window) alike.
            self._mpv.command("osd-overlay", _QR_OVERLAY_ID, "ass-events", ass_events(self._qr.url, placement),
                              CANVAS_W, CANVAS_H, 0, False, False)

    def pause(self) -> None:
        self._mpv.pause = True
        # The corner code's seconds are seconds of music: paused, they wait too (as in the fake).
        if self._qr_timer is not None and self._loop is not None and self._qr_placement is QrPlacement.CORNER:
            self._qr_corner_left = max(0.0, self._qr_timer.when() - self._loop.time())
            self._qr_timer.cancel()
            self._qr_timer = None

    def resume(self) -> None:
        self._mpv.pause = False
        left, self._qr_corner_left = self._qr_corner_left, None
        if left is not None and self._qr_placement is QrPlacement.CORNER:
            self._arm_corner_timer(left)

    @property
    def paused(self) -> bool:
        return bool(self._mpv.pause)

    def set_volume(self, percent: float) -> None:
        self._volume = max(0.0, min(100.0, percent))
        self._mpv.volume = self._volume

    @property
    def volume(self) -> float:
        return self._volume

    async def probe(self) -> None:
        """Read a property off the loop: a wedged libmpv holds the call, not the loop. At most one read is in
        flight; while it hangs, every probe waits on it (no thread piles up behind a stuck core)."""
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(asyncio.to_thread(self._read_core))
        await asyncio.shield(self._probe)

    def _read_core(self) -> Any:
        return self._mpv.idle_active

    def show_message(self, text: str) -> None:
        # The OSD over the idle window (force-window keeps one open); a day is "until replaced".
        self._mpv.command("show-text", text, "86400000" if text else "1")

    def position(self) -> float | None:
        if self._current is None:
            return None
        value = self._mpv.time_pos
        return None if value is None else float(value)


# --- the doctor's probe ---------------------------------------------------------------------------

# Digital silence generated inside libmpv: opens the audio output without a sound. It lasts far longer than
# the probe waits, because mpv reports a property's value when Python asks, not each change: an output that
# opened and closed again while Python was held up (a loaded box) would look as if it never opened.
_SILENCE = "av://lavfi:aevalsrc=0:d=60"


@dataclass(frozen=True, slots=True)
class OutputProbe:
    """What libmpv says when asked to open this box's outputs the way the player does."""

    libmpv_version: str | None  # None: libmpv could not be loaded or initialised at all
    audio_output: str | None  # the audio driver that opened (alsa, pulse, null…); None: none did
    audio_error: str  # why not, in mpv's words
    screen_error: str | None  # video on: why its output cannot open; None: it opened (or video is off)


def probe_outputs(config: PlayerConfig, timeout_s: float = 10.0) -> OutputProbe:
    """Open the video output (when video is on) and play silence through the audio output, with the player's own
    options. Blocking (libmpv's threads), a second or so: run it in a thread."""
    screen_error = None
    messages: list[str] = []

    def collect(_level: str, prefix: str, text: str) -> None:
        messages.append(f"{prefix}: {text.strip()}")

    if config.video:
        try:
            mpv.MPV(log_handler=collect, loglevel="error", **mpv_options(config, video=True)).terminate()
        except Exception as exc:  # python-mpv raises several types for "mpv_initialize failed"
            screen_error = "; ".join(messages[:2]) or str(exc.args[0] if exc.args else exc)
    messages.clear()
    try:
        player = mpv.MPV(log_handler=collect, loglevel="error", **mpv_options(config, video=False))
    except Exception as exc:
        return OutputProbe(None, None, f"libmpv cannot start: {exc}", screen_error)
    settled = threading.Event()  # the output opened, or the file ended without one
    outcome: dict[str, Any] = {}

    def on_end(event: Any) -> None:
        outcome.update(event.as_dict(decoder=mpv.lazy_decoder))
        settled.set()

    def on_ao(_name: str, value: Any) -> None:
        if value:
            outcome["ao"] = value
            settled.set()

    try:
        player.event_callback("end-file")(on_end)
        player.observe_property("current-ao", on_ao)
        player.play(_SILENCE)
        if not settled.wait(timeout_s):
            return OutputProbe(player.mpv_version, None, f"no answer within {timeout_s:.0f}s", screen_error)
        error = "" if outcome.get("ao") else str(outcome.get("file_error") or "no audio output opened")
        if messages and error:
            error = f"{error} ({messages[0]})"
        return OutputProbe(player.mpv_version, outcome.get("ao"), error, screen_error)
    finally:
        player.terminate()
