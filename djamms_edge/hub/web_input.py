"""Reading client input: JSON bodies and fields, each problem an ApiError naming the field."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp import web

from djamms_edge.hub import fastjson
from djamms_edge.hub.context import SERVICE
from djamms_edge.hub.errors import ApiError
from djamms_edge.hub.identity import MAX_EMAIL, InvalidEmail, normalize_email
from djamms_edge.hub.store.base import Song, pending_song
from djamms_edge.shared.ids import InvalidSource, parse_source

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
MAX_TEXT = 300
MAX_SONG_SECONDS = 24 * 3600
# NUL and lone UTF-16 surrogates (JSON "\u0000", "\ud800"): no UTF-8 text holds a surrogate and PostgreSQL
# text holds no NUL, so such a string could only fail later, deep in a store, as a 5xx.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def parse_json_object(raw: str | bytes, field: str = "body") -> dict[str, Any]:
    try:
        data = fastjson.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"malformed JSON: {exc}", field) from None
    if not isinstance(data, dict):
        raise ApiError(400, "must be a JSON object", field)
    return data


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object (over-large bodies raise aiohttp's 413 before parsing).

    A body trickled in slower than ``hub.connections.body_timeout_s`` is refused with 408."""
    if request.content.is_eof():  # the whole body came with the head (a heartbeat's does): no wait, no deadline
        raw = await request.read()
    else:
        limit = request.app[SERVICE].config.connections.body_timeout_s
        try:
            async with asyncio.timeout(limit):
                raw = await request.read()
        except TimeoutError:
            raise ApiError(408, f"the request body did not arrive within {limit:g} s", "body") from None
    if not raw.strip():
        raise ApiError(400, "must be a JSON object (the body is empty)", "body")
    return parse_json_object(raw)


def check_text(value: str, field: str) -> str:
    """``value`` if every character of it can be stored and sent back as UTF-8."""
    if UNSTORABLE.search(value):
        raise ApiError(400, "must not contain NUL or unpaired surrogate characters", field)
    return value


def check_id(value: object, field: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise ApiError(400, "must be 1-128 characters of letters, digits and _ . : @ -", field)
    return value


class Fields:
    """Typed access to a JSON object; ``path`` prefixes field names in errors ("song.duration")."""

    def __init__(self, data: dict[str, Any], path: str = "") -> None:
        self.data = data
        self.path = path

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: str, required: bool) -> Any:
        value = self.data.get(key)
        if value is None and required:
            raise ApiError(400, "is required", self.name(key))
        return value

    def text(self, key: str, *, required: bool = True, max_len: int = MAX_TEXT, default: str = "") -> str:
        value = self._get(key, required)
        if value is None:
            return default
        if not isinstance(value, str):
            raise ApiError(400, "must be a string", self.name(key))
        if len(value) > max_len:
            raise ApiError(400, f"must be at most {max_len} characters", self.name(key))
        check_text(value, self.name(key))
        if required and not value.strip():
            raise ApiError(400, "must not be empty", self.name(key))
        return value

    def optional_text(self, key: str, *, max_len: int = MAX_TEXT) -> str | None:
        return self.text(key, max_len=max_len) if self.data.get(key) is not None else None

    def ident(self, key: str, *, required: bool = True) -> str | None:
        value = self._get(key, required)
        return None if value is None else check_id(value, self.name(key))

    def number(self, key: str, *, required: bool = True, low: float = 0.0, high: float = MAX_SONG_SECONDS
               ) -> float | None:
        value = self._get(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ApiError(400, "must be a number", self.name(key))
        if not low <= value <= high:
            raise ApiError(400, f"must be between {low:g} and {high:g}", self.name(key))
        return float(value)

    def integer(self, key: str, *, low: int = 0, high: int = 2**62) -> int:
        value = self._get(key, True)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ApiError(400, "must be an integer", self.name(key))
        if not low <= value <= high:
            raise ApiError(400, f"must be between {low} and {high}", self.name(key))
        return value

    def obj(self, key: str) -> Fields:
        value = self._get(key, True)
        if not isinstance(value, dict):
            raise ApiError(400, "must be an object", self.name(key))
        return Fields(value, self.name(key))

    def email(self, key: str) -> str:
        """The address in its one normal form (``identity.normalize_email``): stored, compared and mailed as is."""
        try:
            return normalize_email(self.text(key, max_len=MAX_EMAIL + 16))
        except InvalidEmail as exc:
            raise ApiError(400, str(exc), self.name(key)) from None

    def video_id(self, key: str, *, allow_urls: bool) -> str:
        try:
            return parse_source(self._get(key, True), allow_urls=allow_urls).key
        except InvalidSource as exc:
            raise ApiError(400, str(exc), self.name(key)) from None

    def song(self, key: str, *, allow_urls: bool, details_optional: bool = False) -> Song:
        """``{videoId, title, artist, duration}``; with ``details_optional``, a song with none of the three (or
        all three empty, as a pending song is sent back) is pending: its box describes it later."""
        song = self.obj(key)
        video_id = song.video_id("videoId", allow_urls=allow_urls)
        if details_optional and not any(song.data.get(k) for k in ("title", "artist", "duration")):
            return pending_song(video_id)
        duration = song.number("duration")
        assert duration is not None
        return Song(video_id, song.text("title"), song.text("artist"), duration)


def query_int(request: web.Request, key: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "must be an integer", key) from None
    if not low <= value <= high:
        raise ApiError(400, f"must be between {low} and {high}", key)
    return value
