"""What plays next. Pure: no I/O, the clock comes in as ``now``.

* The oldest paid (priority) entry always comes first.
* Otherwise the main queue plays in rotation: starting after the main entry played last, the
  first entry whose track was not played within ``repeat_window_s`` and whose artist is not among
  the last ``artist_separation`` plays.
* When no entry passes both rules the artist rule gives way first; when even the repeat rule
  cannot be met (a playlist shorter than the window) the least recently played track plays: a
  venue hears a repeat rather than silence.
* Sources marked unplayable (missing or broken files) are never chosen.
* Songs the venue bans (by video id or artist, or flagged explicit while explicit songs are off) are
  passed over (``Bans``, from the hub's venue rules).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from djamms_edge.edge.queue.model import EntryKind, Play, QueueEntry


@dataclass(frozen=True, slots=True)
class RotationRules:
    repeat_window_s: float = 3600.0
    artist_separation: int = 2


@dataclass(frozen=True, slots=True)
class Bans:
    """What a venue does not play: video ids, artists (folded), and explicit video ids while those are off."""

    videos: frozenset[str] = frozenset()
    artists: frozenset[str] = frozenset()
    explicit: frozenset[str] = frozenset()

    @classmethod
    def from_rules(cls, rules: dict[str, Any] | None) -> Bans:
        """From the hub's venue rules JSON (``{"allowExplicit", "marks": [{"kind", "value"}]}``); None: no bans."""
        if not rules:
            return cls()
        marks = [m for m in rules.get("marks") or [] if isinstance(m, dict)]

        def values(kind: str) -> frozenset[str]:
            return frozenset(str(m.get("value")) for m in marks if m.get("kind") == kind)

        explicit = frozenset() if rules.get("allowExplicit", True) else values("explicit")
        return cls(values("ban_video"), frozenset(_artist(a) for a in values("ban_artist")), explicit)

    def bans(self, video_id: str, artist: str) -> bool:
        return video_id in self.videos or video_id in self.explicit or _artist(artist) in self.artists


def next_priority(priority: Sequence[QueueEntry], skip: Collection[str] = ()) -> QueueEntry | None:
    """The oldest paid request (ties broken by id, so every box agrees), ignoring ``skip``ped entry ids."""
    waiting = [e for e in priority if e.entry_id not in skip]
    return min(waiting, key=lambda e: (e.requested_at, e.entry_id), default=None)


def next_main(
    main: Sequence[QueueEntry], history: Sequence[Play], rules: RotationRules, now: float,
    unplayable: Collection[str] = (),
) -> QueueEntry | None:
    """The next main-queue entry by the rotation rules; ``history`` is oldest first."""
    candidates = [e for e in _rotated(main, history) if e.source not in unplayable]
    if not candidates:
        return None
    last_played: dict[str, float] = {}
    for play in history:
        last_played[play.source] = max(play.started_at, last_played.get(play.source, play.started_at))
    recent = history[-rules.artist_separation :] if rules.artist_separation > 0 else []
    recent_artists = {_artist(p.artist) for p in recent} - {""}

    def fresh(entry: QueueEntry) -> bool:
        played = last_played.get(entry.source)
        return played is None or now - played >= rules.repeat_window_s

    for passes in (lambda e: fresh(e) and _artist(e.artist) not in recent_artists, fresh):
        chosen = next((e for e in candidates if passes(e)), None)
        if chosen is not None:
            return chosen
    return min(candidates, key=lambda e: last_played.get(e.source, float("-inf")))


def plan(
    priority: Sequence[QueueEntry], main: Sequence[QueueEntry], history: Sequence[Play], rules: RotationRules,
    now: float, count: int, unplayable: Collection[str] = (),
) -> list[QueueEntry]:
    """The next ``count`` entries, each chosen as if the ones before it had just played."""
    planned: list[QueueEntry] = []
    assumed = list(history)
    playable_priority = [e for e in priority if e.source not in unplayable]
    for _ in range(count):
        entry = next_priority(playable_priority, skip={e.entry_id for e in planned})
        if entry is None:
            entry = next_main(main, assumed, rules, now, unplayable)
        if entry is None:
            break
        planned.append(entry)
        assumed.append(Play.of(entry, now))
    return planned


def _rotated(main: Sequence[QueueEntry], history: Sequence[Play]) -> list[QueueEntry]:
    """The main queue starting just after the main entry that played last."""
    index = {e.entry_id: i for i, e in enumerate(main)}
    last = next((index[p.entry_id] for p in reversed(history) if p.kind is EntryKind.MAIN and p.entry_id in index),
                None)
    start = 0 if last is None else last + 1
    return [*main[start:], *main[:start]]


def _artist(name: str) -> str:
    return " ".join(name.casefold().split())
