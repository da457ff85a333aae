"""``/metrics``: a snapshot in the Prometheus text exposition format (version 0.0.4).

Pure: takes the snapshot and the clock, returns text. Names carry the unit
(``_seconds``, ``_bytes``) and counters end in ``_total``, as Prometheus expects.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from djamms_edge.edge.status.model import ROLES, StatusSnapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "djamms_edge"

Sample = tuple[dict[str, str], float]


def render_metrics(snapshot: StatusSnapshot, now: float, live_clients: int) -> str:
    playing = snapshot.now_playing
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> None:
        full = f"{PREFIX}_{name}"
        lines.append(f"# HELP {full} {help_text}")
        lines.append(f"# TYPE {full} {kind}")
        lines.extend(f"{full}{_labels(labels)} {_number(value)}" for labels, value in samples)

    def gauge(name: str, help_text: str, value: float) -> None:
        family(name, "gauge", help_text, [({}, value)])

    family(
        "info",
        "gauge",
        "constant 1, labelled with what this box is",
        [({"venue": snapshot.venue_id, "device": snapshot.device_id, "version": snapshot.software_version}, 1)],
    )
    family("role", "gauge", "1 for the role this box has now", [({"role": r}, r == snapshot.role) for r in ROLES])
    gauge("hub_connected", "1 while the hub link is up", snapshot.hub.connected)
    gauge("hub_link_changed_timestamp_seconds", "when the hub link last went up or down", snapshot.hub.since)
    gauge("playing", "1 while a track is loaded (even if paused)", playing is not None)
    gauge("paused", "1 while playback is paused", playing is not None and playing.paused)
    gauge("position_seconds", "playback position within the current file", playing.position_when(now) if playing else 0)
    gauge("track_end_seconds", "where the current track is left (realEndOffset)", playing.real_end if playing else 0)
    gauge("volume_percent", "player volume, 0-100", snapshot.volume)
    family(
        "queue_length",
        "gauge",
        "entries waiting in each queue (main: the part the box knows ahead)",
        [({"queue": "priority"}, len(snapshot.priority_queue)), ({"queue": "main"}, len(snapshot.main_queue))],
    )
    # Absent parts are absent series, not zeros: "no cache here" is not "an empty cache".
    if snapshot.cache is not None:
        gauge("cache_used_bytes", "bytes of media in the local cache", snapshot.cache.bytes_used)
        gauge("cache_capacity_bytes", "configured cache size", snapshot.cache.bytes_cap)
        gauge("cache_files", "media files in the local cache", snapshot.cache.files)
    if snapshot.analysis is not None:
        gauge("analysis_done_tracks", "tracks analysed in the current idle-night pass", snapshot.analysis.done)
        gauge("analysis_total_tracks", "tracks the current idle-night pass will analyse", snapshot.analysis.total)
        gauge("analysis_running", "1 while idle-night analysis is working", snapshot.analysis.running)
    family("errors_total", "counter", "errors reported since the daemon started", [({}, snapshot.errors_total)])
    gauge("status_live_clients", "status pages receiving live updates now", live_clients)
    return "\n".join(lines) + "\n"


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items()) + "}"


def _escape(value: str) -> str:
    # The exposition format escapes exactly these three in label values.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))
