"""A venue at a glance, for its staff: each box, recent device errors, today's requests and refunds.

``box_json`` is a pure function of a box's record, the venue's master and the time, so its rules are
tested by table; ``venue_dashboard`` reads the store once per part.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

from djamms_edge.hub.accounts import require_venue
from djamms_edge.hub.service import HubService
from djamms_edge.hub.store.base import DeviceRecord, Json, MasterInfo

RECENT_ERRORS = 20
RECENT_REQUESTS = 30
TODAY_MAX = 1000  # requests of one day a dashboard counts
REFUND_STATUSES = ("refund_due", "refunded", "refund_failed")


def box_role(device: DeviceRecord, master: MasterInfo | None, now_ms: int, stale_ms: int) -> str:
    """revoked, master (holds the lease and beats), standby (reports, waits) or offline (silent)."""
    if device.revoked:
        return "revoked"
    if master is not None and master.device_id == device.device_id and now_ms - master.last_heartbeat_ms < stale_ms:
        return "master"
    if device.reported_at_ms is not None and now_ms - device.reported_at_ms < stale_ms:
        return "standby"
    return "offline"


def box_json(device: DeviceRecord, master: MasterInfo | None, now_ms: int, stale_ms: int) -> Json:
    role = box_role(device, master, now_ms, stale_ms)
    holds_lease = master is not None and master.device_id == device.device_id
    last_heartbeat = master.last_heartbeat_ms if holds_lease and master is not None else device.reported_at_ms
    playing = device.report.now_playing if role == "master" else None
    if playing is not None and device.reported_at_ms is not None:
        # Where it is now, not when it last said: the page's progress bar moves on between refreshes.
        position = float(playing.get("position") or 0.0) + (now_ms - device.reported_at_ms) / 1000
        duration = playing.get("duration")
        playing = {**playing, "position": round(min(position, duration) if duration else position, 1)}
    return {
        **device.to_json(),
        "role": role,
        "epoch": master.epoch if holds_lease and master is not None else None,
        "lastHeartbeat": last_heartbeat,
        "nowPlaying": playing,
    }


def start_of_day_ms(now_ms: int, timezone: str) -> int:
    """Midnight of ``now_ms``'s day in the venue's time zone, in epoch ms."""
    local = datetime.fromtimestamp(now_ms / 1000, ZoneInfo(timezone))
    return int(local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)


async def venue_dashboard(service: HubService, venue_id: str) -> Json:
    store = service.store
    venue = await require_venue(store, venue_id)
    now_ms = service.now_ms()
    await service.liveness(venue_id)
    master = await store.current_master(venue_id)
    boxes = [box_json(d, master, now_ms, service.timings.stale_ms) for d in await store.list_devices(venue_id)]
    since = start_of_day_ms(now_ms, venue.timezone)
    today = [r for r in await store.list_requests(venue_id, None, TODAY_MAX) if r.created_at_ms >= since]
    by_status: Counter[str] = Counter(r.status for r in today)
    return {
        "venue": venue.to_json(),
        "now": now_ms,
        "master": None if master is None else {"deviceId": master.device_id, "epoch": master.epoch},
        "boxes": boxes,
        "deviceErrors": await store.device_errors(venue_id, RECENT_ERRORS),
        "today": {
            "since": since,
            "requests": len(today),
            "byStatus": dict(by_status),
            "refunds": sum(by_status[s] for s in REFUND_STATUSES),
            "recent": [r.to_json() for r in today[:RECENT_REQUESTS]],
        },
    }
