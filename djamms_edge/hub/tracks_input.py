"""Songs typed by staff: a YouTube URL or id, optionally with artist, title and duration. Pure parsing.

An import is one song a line: ``URL-or-id`` alone (the hub fills in what it knows of it), or
``URL-or-id | Artist | Title | 3:45``. Blank lines and ``#`` comments are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from djamms_edge.shared.ids import is_media_url, is_video_id

MAX_IMPORT_LINES = 500
YOUTUBE_HOSTS = frozenset({"youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com"})
DURATION = re.compile(r"^(?:(\d{1,2}):)?(\d{1,3}):(\d{2})$|^(\d{1,5})(?:\.\d+)?$")


class BadLine(ValueError):
    """A line that names no YouTube video, or details that do not parse; the message says which."""


@dataclass(frozen=True, slots=True)
class TrackLine:
    video_id: str
    artist: str | None = None
    title: str | None = None
    duration: float | None = None


def youtube_id(text: str) -> str | None:
    """The video id of a YouTube id or watch/share/shorts URL, else None."""
    text = text.strip()
    if is_video_id(text):
        return text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        return None
    host = (parts.hostname or "").lower()
    candidate = None
    if host == "youtu.be":
        candidate = parts.path.lstrip("/").split("/")[0]
    elif host in YOUTUBE_HOSTS:
        if parts.path == "/watch":
            candidate = (parse_qs(parts.query).get("v") or [""])[0]
        elif parts.path.startswith(("/shorts/", "/embed/", "/live/")):
            candidate = parts.path.split("/")[2]
    return candidate if candidate and is_video_id(candidate) else None


def song_key(text: str, *, allow_urls: bool) -> str | None:
    """The video id a YouTube id or URL names; with ``allow_urls`` (the hub's requests.allow_urls) any other
    http(s) media URL stands for itself, as in a request's song. None: neither."""
    found = youtube_id(text)
    if found is None and allow_urls and is_media_url(text.strip()):
        return text.strip()
    return found


def parse_duration(text: str) -> float:
    """``3:45``, ``1:02:03`` or seconds, as seconds."""
    match = DURATION.fullmatch(text.strip())
    if match is None:
        raise BadLine(f"duration {text.strip()!r} is not m:ss or seconds")
    hours, minutes, seconds, plain = match.groups()
    if plain is not None:
        return float(text.strip())
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)


def parse_line(line: str, *, allow_urls: bool = False) -> TrackLine:
    fields = [f.strip() for f in line.split("|")]
    video_id = song_key(fields[0], allow_urls=allow_urls)
    if video_id is None:
        raise BadLine(f"{fields[0][:80]!r} is not a YouTube video id or URL")
    if len(fields) == 1:
        return TrackLine(video_id)
    if len(fields) != 4 or not fields[1] or not fields[2]:
        raise BadLine("write 'URL | Artist | Title | m:ss', or the URL alone")
    return TrackLine(video_id, fields[1][:300], fields[2][:300], parse_duration(fields[3]))


def import_lines(text: str) -> list[tuple[int, str]]:
    """The numbered lines that name songs (no blanks, no comments)."""
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1)]
    return [(n, line) for n, line in lines if line and not line.startswith("#")]
