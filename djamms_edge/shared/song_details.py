"""A song's artist and title from what yt-dlp says of a video, and the cleaning both the box and the hub apply. Pure.

The box derives the details (``describe``) when it fetches a song staff added by URL alone; the hub cleans
them again (``clean_text``) and never takes the box's word for more than its own venue. Which fields, in order:

1. ``track`` with ``artists``/``artist``: YouTube Music's own metadata for a music video (and most labels').
2. ``title`` of the form ``Artist - Title`` (also with an en or em dash, or ``--``; split at the first one):
   how most music videos are named. Bracketed noise such as ``(Official Video)``, ``[Lyrics]`` or ``(HD)`` goes.
3. ``title`` alone, with the channel as the artist (``uploader``, else ``channel``; an auto-generated
   ``Artist - Topic`` channel is ``Artist``).

Cleaning: Unicode NFC; control characters, format characters (zero-width, bidi overrides such as U+202E),
private-use and unassigned code points removed; every run of whitespace one space; at most ``MAX_TITLE`` /
``MAX_ARTIST`` characters (cut with an ellipsis). Nothing left: no details.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_TITLE = 200
MAX_ARTIST = 120
MAX_DURATION_S = 24 * 3600
# Categories never kept: control, format (bidi overrides, zero-width), surrogate, private use, unassigned.
_DROPPED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_SPACES = re.compile(r"\s+")
_SEPARATOR = re.compile(r"\s+(?:-{1,2}|\u2013|\u2014)\s+")
_NOISE = re.compile(
    r"\s*[(\[](?:[^)\]]*\b(?:official|video|audio|lyrics?|visuali[sz]er|hd|hq|4k|mv)\b[^)\]]*)[)\]]", re.IGNORECASE
)
_TOPIC = re.compile(r"\s+-\s+Topic$")


@dataclass(frozen=True, slots=True)
class SongDetails:
    artist: str
    title: str
    duration: float | None  # seconds; the box's own measurement when it has one


def clean_text(raw: object, max_len: int) -> str:
    """``raw`` as text safe to show anywhere (see the module's doc); "" when nothing is left."""
    if not isinstance(raw, str):
        return ""
    text = unicodedata.normalize("NFC", raw[: max_len * 4])  # never normalise megabytes for a short result
    text = "".join(" " if c.isspace() else c for c in text if c.isspace() or unicodedata.category(c) not in _DROPPED)
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= max_len else text[: max_len - 1].rstrip() + "\u2026"


def clean_duration(raw: object) -> float | None:
    """A plausible length in seconds, or None."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
        return None
    return float(raw) if 0 < raw <= MAX_DURATION_S else None


def split_title(title: str) -> tuple[str, str] | None:
    """``Artist - Title`` (noise removed) as (artist, title), or None when the title has no separator."""
    parts = _SEPARATOR.split(_NOISE.sub("", title), maxsplit=1)
    if len(parts) != 2:
        return None
    artist, rest = (p.strip() for p in parts)
    return (artist, rest) if artist and rest else None


def describe(info: Mapping[str, Any], measured_s: float | None = None) -> SongDetails | None:
    """What a video is, from yt-dlp's info (the fields in the module's doc), or None when it says too little.
    ``measured_s``: the length the box measured, which wins over what the site claims."""
    duration = clean_duration(measured_s) or clean_duration(info.get("duration"))
    artists = info.get("artists")
    named = ", ".join(a for a in artists if isinstance(a, str)) if isinstance(artists, list) else info.get("artist")
    track, artist = clean_text(info.get("track"), MAX_TITLE), clean_text(named, MAX_ARTIST)
    if track and artist:
        return SongDetails(artist, track, duration)
    title = clean_text(info.get("title"), MAX_TITLE * 2)
    split = split_title(title)
    if split is not None:
        return SongDetails(clean_text(split[0], MAX_ARTIST), clean_text(split[1], MAX_TITLE), duration)
    channel = clean_text(info.get("uploader"), MAX_ARTIST) or clean_text(info.get("channel"), MAX_ARTIST)
    title = clean_text(_NOISE.sub("", title), MAX_TITLE)
    if not title or not channel:
        return None
    return SongDetails(_TOPIC.sub("", channel), title, duration)
