"""The hub's pure rules: no I/O, the clock is an argument. Stores call these inside their transactions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeVar

from djamms_edge.hub.identity import artist_key
from djamms_edge.hub.store.base import (
    Analysis,
    KnownDuration,
    MarkKind,
    MasterInfo,
    Offsets,
    RequestRules,
    Song,
    VenueRules,
)

T = TypeVar("T")
NOT_PLAYED_HERE = "This song is not played at this venue"

RegisterDecision = Literal["register", "reconnect", "conflict", "takeover", "second_process"]
ReleaseDecision = Literal["release", "not_holder", "second_process"]


def _span(seconds: float) -> str:
    minutes = seconds / 60
    if minutes == int(minutes):
        return f"{int(minutes)} minute{'s' if minutes != 1 else ''}"
    return f"{seconds:g} seconds"


def duration_refusal(max_duration_s: float) -> str:
    return f"Song duration exceeds {_span(max_duration_s)}"  # the reference: "... exceeds 5 minutes"


def measured_refusal(measured_s: float, max_duration_s: float) -> str | None:
    """Why a fetched track must not play as a paid request: its measured (trimmed) length is over the limit."""
    if measured_s > max_duration_s:
        return f"{duration_refusal(max_duration_s)} (measured {measured_s:.0f} seconds)"
    return None


def artist_refusal(window_ms: int) -> str:
    return f"Too many requests for this artist in the last {_span(window_ms / 1000)}"


def paid_request_refusal(duration_s: float, same_artist_recent: int, rules: RequestRules) -> str | None:
    """Why a paid request must be refused (refund due), or None to accept it."""
    if rules.refusal is not None:
        return rules.refusal
    if duration_s > rules.max_duration_s:
        return duration_refusal(rules.max_duration_s)
    if same_artist_recent >= rules.artist_limit:
        return artist_refusal(rules.artist_window_ms)
    return None


def other_process(holder: str | None, asking: str | None) -> bool:
    """Two processes named by their instance ids, both known and different (no id: an older client)."""
    return holder is not None and asking is not None and holder != asking


def _copy_while_held(master: MasterInfo, instance_id: str | None, now_ms: int, instance_grace_ms: int) -> bool:
    """Another process than the holding one asks while the holder still beats (within the grace)."""
    return other_process(master.instance_id, instance_id) and now_ms - master.last_heartbeat_ms < instance_grace_ms


def decide_register(master: MasterInfo | None, device_id: str, now_ms: int, stale_ms: int,
                    instance_id: str | None = None, instance_grace_ms: int = 0) -> RegisterDecision:
    """The reference's election: same device reconnects, a fresh master is a conflict, a stale one is replaced.

    Same device but another process while the holder still beats (within ``instance_grace_ms``): a copy of
    the device's token — refused. After that the holder has crashed or restarted and the asker reconnects."""
    if master is None:
        return "register"
    if master.device_id == device_id:
        return "second_process" if _copy_while_held(master, instance_id, now_ms, instance_grace_ms) else "reconnect"
    if now_ms - master.last_heartbeat_ms < stale_ms:
        return "conflict"
    return "takeover"


def decide_release(master: MasterInfo | None, device_id: str, now_ms: int, instance_id: str | None = None,
                   instance_grace_ms: int = 0) -> ReleaseDecision:
    """Who may end the lease: the holding device, by the process that holds it — refused to another process
    exactly when its register would be (``decide_register``): a copy of the token cannot end the box's lease
    while the box beats. A holder quiet for the grace has crashed; its successor may register or release."""
    if master is None or master.device_id != device_id:
        return "not_holder"
    return "second_process" if _copy_while_held(master, instance_id, now_ms, instance_grace_ms) else "release"


def play_seconds(duration: float, offsets: Offsets | None) -> float:
    """How long a track really plays once trimmed to its offsets (never negative, never past the file)."""
    start = offsets.start if offsets and offsets.start is not None else 0.0
    end = offsets.end if offsets and offsets.end is not None else duration
    end = min(end, duration) if duration > 0 else end
    return max(0.0, end - max(0.0, start))


def estimate_start_times(now_ms: int, current_ends_ms: int | None, play_durations_s: Sequence[float]) -> list[int]:
    """Estimated start (epoch ms) of each queued entry, in order.

    The first entry starts when the current track ends — or now, if nothing is
    playing or the current track has overrun its estimate."""
    at = max(now_ms, current_ends_ms) if current_ends_ms is not None else now_ms
    starts = []
    for seconds in play_durations_s:
        starts.append(at)
        at += round(seconds * 1000)
    return starts


def mark_key(kind: MarkKind, value: str) -> str:
    """What a mark is unique by: an artist folded as the per-artist limit folds it, a video id as it is."""
    return artist_key(value) if kind == "ban_artist" else value


def song_refusal(song: Song, rules: VenueRules) -> str | None:
    """Why a venue does not take ``song`` at all (banned video or artist, explicit while off), or None."""
    if song.video_id in rules.values("ban_video"):
        return NOT_PLAYED_HERE
    if artist_key(song.artist) in {artist_key(a) for a in rules.values("ban_artist")}:
        return NOT_PLAYED_HERE
    if not rules.settings.allow_explicit and song.video_id in rules.values("explicit"):
        return NOT_PLAYED_HERE
    return None


def moved(items: Sequence[T], index: int, to: int) -> list[T]:
    """``items`` with the one at ``index`` moved to ``to`` (both 0-based; ``to`` clamped into range)."""
    rest = [x for i, x in enumerate(items) if i != index]
    at = max(0, min(to, len(rest)))
    return [*rest[:at], items[index], *rest[at:]]


# How far two boxes' measurements of one video may differ and still count as the same (seconds).
AGREE_DURATION_S = 1.0
AGREE_OFFSET_S = 0.5


def analyses_agree(a: Analysis, b: Analysis) -> bool:
    """Two venues' boxes measured the same track alike: then, and only then, it becomes what every venue sees.

    One venue's box (or a copy of its token) cannot change what other venues play on its own say."""
    pairs = ((a.duration, b.duration, AGREE_DURATION_S), (a.real_start_offset, b.real_start_offset, AGREE_OFFSET_S),
             (a.real_end_offset, b.real_end_offset, AGREE_OFFSET_S))
    return all((x is None and y is None) or (x is not None and y is not None and abs(x - y) <= limit)
               for x, y, limit in pairs)


# How far a box's measurement may be from a length the hub trusts and still be plausible: a music video's
# intro or outro, a typed "3:45" for a 3:52 video, silence trimmed at either end (seconds, or this share).
PLAUSIBLE_WITHIN_S = 20.0
PLAUSIBLE_WITHIN_SHARE = 0.15


def plausible_analysis(analysis: Analysis, known: Sequence[KnownDuration]) -> bool:
    """A box's analysis may become what every venue sees only if no length the hub trusts independently of
    the box's own venue (an admin's analysis; another venue's staff's declared duration) is far from it —
    neither the measured duration nor the span its cue points keep. Agreement of two venues is not enough
    then: two rogue or broken venues cannot cut a song everyone knows is 3:45.

    Fail-safe: a wrong trusted length only keeps reports with their venues; it never writes the catalog."""
    for k in known:
        if k.venue_id is not None and k.venue_id == analysis.venue_id:
            continue  # the venue's own staff vouch for nothing its own box says
        slack = max(PLAUSIBLE_WITHIN_S, PLAUSIBLE_WITHIN_SHARE * k.seconds)
        if analysis.duration is not None and abs(analysis.duration - k.seconds) > slack:
            return False
        duration = analysis.duration if analysis.duration is not None else k.seconds
        if play_seconds(duration, Offsets(analysis.real_start_offset, analysis.real_end_offset)) < k.seconds - slack:
            return False
    return True


def shared_by_agreement(analysis: Analysis, others: Sequence[Analysis], known: Sequence[KnownDuration]) -> bool:
    """A venue's box's analysis becomes the shared value: it is plausible, and a plausible analysis of another
    venue agrees with it."""
    return plausible_analysis(analysis, known) and any(
        analyses_agree(analysis, other) and plausible_analysis(other, known) for other in others)


def admins_duration(analysis: Analysis) -> float | None:
    """The duration an analysis makes a trusted length of the video: an admin's (no venue) only."""
    return analysis.duration if analysis.venue_id is None else None
