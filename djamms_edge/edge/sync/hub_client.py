"""The one module that speaks HTTP to the hub (aiohttp client; REST under /api/v1 and the feed WebSocket).

Everything comes back in domain terms (lease events, JSON bodies of the hub's
documented shapes) or as one of two errors: ``HubUnavailable`` (no usable
answer: connection refused, timeout, 5xx, a body that is not JSON) or
``HubRefused`` / ``StaleEpoch`` (the hub answered no).
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import platform
import secrets
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

import aiohttp

from djamms_edge.edge.sync.errors import HubRefused, HubUnavailable, StaleEpoch
from djamms_edge.edge.sync.hub_api import (
    Analysis,
    FeedBatch,
    FeedMessage,
    Json,
    Paired,
    PairingTicket,
    PlayPosition,
    WhoAmI,
)
from djamms_edge.edge.sync.lease import Conflict, Granted, HeartbeatLost, HeartbeatOk

log = logging.getLogger(__name__)

USER_AGENT = f"djamms-edge ({platform.machine()})"
FEED_PING_S = 10.0  # a silent half-open socket is noticed within this (plus the timeout)


class HubClient:
    def __init__(self, base_url: str, token: str, venue_id: str, device_id: str, *, timeout_s: float = 4.0,
                 report: Callable[[], Json] = dict, instance_id: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.venue_id = venue_id
        self.device_id = device_id
        self._report = report  # what the box says of itself with each register/heartbeat (sync/device_report.py)
        # Who we are to the hub's second-process check (edge/device.py instance_id; default: this process only):
        # the hub refuses another instance with our token while we hold the lease (a copy).
        self.instance_id = instance_id or secrets.token_hex(8)
        self._timeout_s = timeout_s
        self.max_request_duration: float | None = None
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        )

    @property
    def _venue(self) -> str:
        return f"{self.base_url}/api/v1/venues/{self.venue_id}"

    async def close(self) -> None:
        await self._session.close()

    # --- registry --------------------------------------------------------------------------------

    async def register(self) -> Granted | Conflict:
        body = await self._call(
            "POST", f"{self._venue}/players/register",
            {**self._report(), "deviceId": self.device_id, "userAgent": USER_AGENT, "instanceId": self.instance_id},
        )
        self._note_limit(body)
        status = body.get("status")
        epoch = _int_or_none(body.get("epoch"))
        if status in ("registered", "reconnected") and epoch is not None:
            return Granted(status, epoch)
        master = body.get("currentMaster")
        if status == "conflict" and isinstance(master, dict) and master.get("deviceId"):
            return Conflict(str(master["deviceId"]), _int_or_none(master.get("epoch", epoch)))
        raise HubUnavailable(f"unusable register answer {str(body)[:200]}")

    async def heartbeat(self, position: PlayPosition | None = None) -> HeartbeatOk | HeartbeatLost:
        request: Json = {**self._report(), "deviceId": self.device_id, "instanceId": self.instance_id}
        if position is not None:
            request["position"] = {"entryId": position.entry_id, "seconds": round(max(0.0, position.seconds), 3)}
        body = await self._call("POST", f"{self._venue}/players/heartbeat", request)
        self._note_limit(body)
        if body.get("status") == "updated":
            return HeartbeatOk()
        if body.get("status") in ("not_found", "conflict"):  # conflict: another process of ours holds it
            return HeartbeatLost()
        raise HubUnavailable(f"unexpected heartbeat answer {body.get('status')!r}")

    async def release(self) -> None:
        await self._call("POST", f"{self._venue}/players/release",
                         {"deviceId": self.device_id, "instanceId": self.instance_id})

    def _note_limit(self, body: Json) -> None:
        limit = body.get("maxRequestDuration")
        if isinstance(limit, (int, float)) and not isinstance(limit, bool) and limit > 0:
            self.max_request_duration = float(limit)

    # --- queue and feed --------------------------------------------------------------------------

    async def snapshot(self) -> Json:
        return await self._call("GET", f"{self._venue}/queue/full")

    async def changes(self, since: int) -> FeedBatch:
        body = await self._call("GET", f"{self._venue}/changes", params={"since": str(since)})
        try:
            messages = tuple(_message(m) for m in body.get("messages", []))
            return FeedBatch(int(body["version"]), messages, bool(body.get("more")))
        except (KeyError, TypeError, ValueError) as exc:
            raise HubUnavailable(f"unusable changes answer: {exc!r}") from None

    async def feed(self, since: int) -> AsyncGenerator[FeedMessage, None]:
        url = f"{self._venue}/feed"
        try:
            async with self._session.ws_connect(
                url, params={"since": str(since)}, heartbeat=FEED_PING_S, timeout=aiohttp.ClientWSTimeout(ws_close=2)
            ) as ws:
                async for raw in ws:
                    if raw.type is not aiohttp.WSMsgType.TEXT:
                        break
                    yield _message(json.loads(raw.data))
        except aiohttp.WSServerHandshakeError as exc:
            if 400 <= exc.status < 500:
                raise HubRefused(exc.status, f"change feed refused: {exc.message}") from None
            raise HubUnavailable(f"change feed: {exc.status} {exc.message}") from None
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError, KeyError) as exc:
            raise HubUnavailable(f"change feed: {exc!r}") from None
        raise HubUnavailable("change feed closed")

    # --- master writes (fenced by epoch, deduped by key) -------------------------------------------

    async def now_playing(self, epoch: int, entry_id: str, song: Json | None, key: str) -> Json:
        body: Json = {"deviceId": self.device_id, "epoch": epoch, "entryId": entry_id}
        if song is not None:
            body["song"] = song
        return await self._call("POST", f"{self._venue}/now-playing", body, key=key)

    async def played(self, epoch: int, entry_id: str, song: Json | None, played_at_ms: int, key: str) -> Json:
        body: Json = {"deviceId": self.device_id, "epoch": epoch, "entryId": entry_id, "playedAt": played_at_ms}
        if song is not None:
            body["song"] = song
        return await self._call("POST", f"{self._venue}/played", body, key=key)

    async def report_over_limit(self, epoch: int, request_id: str, duration: float) -> Json:
        body: Json = {"deviceId": self.device_id, "epoch": epoch, "duration": round(duration, 3)}
        return await self._call("POST", f"{self._venue}/requests/{request_id}/over-limit", body)

    async def history(self, limit: int = 100) -> list[Json]:
        body = await self._call("GET", f"{self._venue}/history", params={"limit": str(limit)})
        return list(body["history"])

    # --- catalog ---------------------------------------------------------------------------------

    async def report_analysis(self, analysis: Analysis) -> Json:
        body = {
            "videoId": analysis.video_id,
            "duration": analysis.duration,
            "realStartOffset": analysis.real_start_offset,
            "realEndOffset": analysis.real_end_offset,
            "loudness": analysis.loudness,
        }
        return await self._call(
            "POST", f"{self.base_url}/api/v1/catalog/analysis", {k: v for k, v in body.items() if v is not None}
        )

    async def report_details(self, video_id: str, title: str, artist: str, duration: float) -> Json:
        body = {"videoId": video_id, "title": title, "artist": artist, "duration": round(duration, 3)}
        return await self._call("POST", f"{self._venue}/songs/details", body)

    async def pending_songs(self, limit: int = 100) -> list[str]:
        body = await self._call("GET", f"{self._venue}/songs/pending", params={"limit": str(limit)})
        return [str(v) for v in body.get("videoIds", [])]

    async def report_error(self, video_id: str | None, message: str, at_ms: int, key: str) -> Json:
        body: Json = {"deviceId": self.device_id, "message": message, "at": at_ms}
        if video_id is not None:
            body["videoId"] = video_id
        return await self._call("POST", f"{self._venue}/device-errors", body, key=key)

    async def catalog(self, video_ids: list[str]) -> dict[str, Json]:
        if not video_ids:
            return {}
        params = [("videoId", v) for v in video_ids]
        body = await self._call("GET", f"{self.base_url}/api/v1/catalog", params=params)
        return {t["videoId"]: t for t in body.get("tracks", [])}

    # --- the doctor --------------------------------------------------------------------------------

    async def whoami(self) -> WhoAmI:
        """Who the hub takes this box's token for (GET /api/v1/me), and the hub's clock (its Date header)."""
        body, headers = await self._exchange("GET", f"{self.base_url}/api/v1/me")
        date = headers.get("Date")
        server_time = None
        if date:
            with contextlib.suppress(TypeError, ValueError):
                server_time = email.utils.parsedate_to_datetime(date).timestamp()
        return WhoAmI(str(body.get("role", "")), str(body.get("subject", "")), body.get("venueId"), server_time)

    # --- plumbing --------------------------------------------------------------------------------

    async def _call(
        self, method: str, url: str, body: Json | None = None, *, params: Any = None, key: str | None = None
    ) -> Json:
        return (await self._exchange(method, url, body, params=params, key=key))[0]

    async def _exchange(
        self, method: str, url: str, body: Json | None = None, *, params: Any = None, key: str | None = None
    ) -> tuple[Json, Mapping[str, str]]:
        return await _exchange(self._session, method, url, body, params=params, key=key)


class PairingClient:
    """A box without a token: ask the hub for a pairing code, then poll until staff entered it."""

    def __init__(self, base_url: str, *, timeout_s: float = 4.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT},
                                              timeout=aiohttp.ClientTimeout(total=timeout_s))

    async def close(self) -> None:
        await self._session.close()

    async def start(self, device_id: str) -> PairingTicket:
        body, _ = await _exchange(self._session, "POST", f"{self.base_url}/api/v1/pairings", {"deviceId": device_id})
        try:
            return PairingTicket(str(body["code"]), str(body["secret"]), int(body["expiresAt"]),
                                 float(body.get("pollAfter", 2.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise HubUnavailable(f"unusable pairing answer: {exc!r}") from None

    async def collect(self, secret: str) -> Paired | None:
        """The box's venue and token once staff entered its code; None while they have not.
        HubRefused(404) when the code expired or was collected (ask for a new one)."""
        body, _ = await _exchange(self._session, "POST", f"{self.base_url}/api/v1/pairings/collect",
                                  {"secret": secret})
        if body.get("status") != "paired":
            return None
        try:
            return Paired(str(body["venueId"]), str(body["deviceId"]), str(body["deviceToken"]))
        except KeyError as exc:
            raise HubUnavailable(f"unusable pairing answer: {exc!r}") from None


async def _exchange(session: aiohttp.ClientSession, method: str, url: str, body: Json | None = None, *,
                    params: Any = None, key: str | None = None) -> tuple[Json, Mapping[str, str]]:
    """One request; its JSON body and headers, or HubUnavailable / HubRefused / StaleEpoch."""
    headers = {"Idempotency-Key": key} if key else None
    try:
        async with session.request(method, url, json=body, params=params, headers=headers) as response:
            text = await response.text()
            status = response.status
            answer_headers = response.headers
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise HubUnavailable(f"{method} {url}: {exc!r}") from None
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        data = None
    if status >= 500 or not isinstance(data, dict):
        raise HubUnavailable(f"{method} {url}: {status} {text[:200]!r}")
    if status >= 400:
        if data.get("error") == "stale_epoch":
            raise StaleEpoch(str(data.get("message", "stale epoch")), _int_or_none(data.get("currentEpoch")))
        raise HubRefused(status, f"{data.get('field') or ''}: {data.get('error')}", data.get("field"))
    return data, answer_headers


def _message(raw: Json) -> FeedMessage:
    kind = raw["type"]
    if kind == "snapshot":
        return FeedMessage("snapshot", int(raw["version"]), raw["queue"])
    if kind == "change":
        return FeedMessage("change", int(raw["version"]), raw["change"])
    if kind == "ready":
        return FeedMessage("ready", int(raw["version"]), {})
    raise ValueError(f"unknown feed message type {kind!r}")


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
