"""The queue a box plays without a hub: a local playlist in rotation plus paid requests kept on this box.

The playlist is a directory of media files (played in name order) or a text file with one
path, http(s) URL or video id a line (``#`` starts a comment; relative paths are relative to
the file). Each track gets a stable entry id, so the rotation knows where it left off across
restarts. Titles and artists come from file names of the form ``Artist - Title.ext``.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from djamms_edge.edge.queue.config import QueueConfig
from djamms_edge.edge.queue.model import EntryKind, QueueEntry
from djamms_edge.edge.queue.rotation import plan
from djamms_edge.edge.queue.source import Outcome
from djamms_edge.edge.state import PlaybackState
from djamms_edge.shared.ids import is_media_url, is_video_id

log = logging.getLogger(__name__)

MEDIA_SUFFIXES = frozenset(
    {".aac", ".flac", ".m4a", ".mkv", ".mov", ".mp3", ".mp4", ".oga", ".ogg", ".opus", ".wav", ".webm"}
)


class PlaylistError(Exception):
    """The configured playlist cannot be read at all."""


def parse_playlist(text: str, base: Path) -> tuple[list[str], list[str]]:
    """Sources (absolute paths, URLs, video ids) and one problem message per line that is none of those."""
    sources: list[str] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "://" in line:
            if is_media_url(line):
                sources.append(line)
            else:
                problems.append(f"line {number}: not an http(s) URL: {line[:80]!r}")
        elif is_video_id(line) and not (base / line).exists():
            sources.append(line)
        else:
            sources.append(str((base / line).resolve()))
    return sources, problems


def load_playlist(path: Path) -> list[QueueEntry]:
    """The playlist's tracks as main-queue entries. Raises PlaylistError if it cannot be read."""
    if path.is_dir():
        sources = [str(p.resolve()) for p in sorted(path.iterdir()) if p.suffix.lower() in MEDIA_SUFFIXES]
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PlaylistError(f"playlist {path}: {exc}") from None
        sources, problems = parse_playlist(text, path.parent)
        for problem in problems:
            log.warning("playlist %s: %s (ignored)", path, problem)
    return [playlist_entry(source) for source in sources]


def playlist_problems(config: QueueConfig) -> list[str]:
    """For ``check-config``: a configured playlist that cannot be read, or that names nothing playable."""
    if not config.playlist:
        return []
    try:
        entries = load_playlist(Path(config.playlist))
    except PlaylistError as exc:
        return [f"edge.queue.playlist: {exc}"]
    return [] if entries else [f"edge.queue.playlist: {config.playlist} lists no media"]


def playlist_entry(source: str) -> QueueEntry:
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    name = Path(unquote(urlsplit(source).path)).stem if "://" in source else Path(source).stem
    artist, sep, title = name.partition(" - ")
    if not sep:
        artist, title = "", name
    return QueueEntry(f"local-{digest}", source, title=title.strip(), artist=artist.strip(), kind=EntryKind.MAIN)


class LocalQueue:
    """A ``QueueSource`` over the local playlist and the paid requests stored in ``playback.db``."""

    def __init__(
        self, state: PlaybackState, playlist: Sequence[QueueEntry], config: QueueConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._state = state
        self._playlist = list(playlist)
        self._config = config
        self._rules = config.rules()
        self._clock = clock
        self._listeners: list[Callable[[], None]] = []

    async def upcoming(self, count: int) -> list[QueueEntry]:
        now = self._clock()
        requests = await self._state.waiting_requests()
        history = await self._state.recent_plays(now - self._rules.repeat_window_s, self._rules.artist_separation)
        unplayable = await self._state.unplayable_since(now - self._config.retry_unplayable_s)
        return plan(requests, self._playlist, history, self._rules, now, count, unplayable)

    async def started(self, entry: QueueEntry) -> None:
        if entry.kind is EntryKind.PRIORITY:
            await self._state.set_request_state(entry.entry_id, "playing")

    async def finished(self, entry: QueueEntry, outcome: Outcome, detail: str = "") -> None:
        if entry.kind is EntryKind.PRIORITY:
            await self._state.set_request_state(entry.entry_id, "failed" if outcome is Outcome.FAILED else "done")
        elif outcome is Outcome.FAILED:
            await self._state.mark_unplayable(entry.source, detail or "failed", self._clock())

    async def request_limit(self) -> float | None:
        return None  # requests queued on the box itself are staff's, not paid through the hub

    async def refused(self, entry: QueueEntry, measured_s: float) -> None:
        await self._state.set_request_state(entry.entry_id, "failed")

    def subscribe(self, on_change: Callable[[], None]) -> None:
        self._listeners.append(on_change)

    async def request(self, source: str, *, title: str = "", artist: str = "", requested_by: str = "",
                      entry_id: str = "") -> QueueEntry:
        """Queue a paid request on this box; it plays next unless older requests wait."""
        now = self._clock()
        entry = QueueEntry(
            entry_id or f"req-{uuid.uuid4().hex}", source,
            title=title, artist=artist, kind=EntryKind.PRIORITY, requested_at=now, requested_by=requested_by,
        )
        await self._state.add_request(entry)
        for listener in self._listeners:
            listener()
        return entry
