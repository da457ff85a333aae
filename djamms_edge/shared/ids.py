"""What counts as a media source: a YouTube video id or an http(s) media URL.

Ids are checked against a strict pattern before anything else sees them, and are
never interpolated into a shell: external tools get argv lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

VIDEO_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{11}$")
MAX_URL_LENGTH = 2048


class InvalidSource(ValueError):
    """A string that is neither a valid video id nor an allowed media URL."""


@dataclass(frozen=True, slots=True)
class MediaSource:
    kind: Literal["youtube", "url"]
    value: str

    @property
    def url(self) -> str:
        if self.kind == "youtube":
            return f"https://www.youtube.com/watch?v={self.value}"
        return self.value

    @property
    def key(self) -> str:
        """Stable catalog/cache key: the video id, or the URL itself."""
        return self.value


def is_video_id(text: str) -> bool:
    return bool(VIDEO_ID_PATTERN.fullmatch(text))


def is_media_url(text: str) -> bool:
    if ":" not in text:  # no scheme (a video id): said at once, where the checks below took microseconds
        return False
    # Control characters (NUL among them) and lone surrogates: no real URL has them, no store keeps them.
    if len(text) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in text):
        return False
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def parse_source(text: object, *, allow_urls: bool = True) -> MediaSource:
    """Classify ``text``; raise InvalidSource with a message naming what is allowed."""
    if not isinstance(text, str):
        raise InvalidSource("must be a string")
    if is_video_id(text):
        return MediaSource("youtube", text)
    if allow_urls and is_media_url(text):
        return MediaSource("url", text)
    allowed = "an 11-character video id ([A-Za-z0-9_-])"
    if allow_urls:
        allowed += " or an http(s) media URL"
    raise InvalidSource(f"must be {allowed}")
