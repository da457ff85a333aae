"""The queue rules, table-driven: paid requests first, then the playlist in rotation with its spacing rules."""

from __future__ import annotations

import pytest

from djamms_edge.edge.queue.model import EntryKind, Play, QueueEntry
from djamms_edge.edge.queue.rotation import RotationRules, next_main, next_priority, plan

NOW = 1_000_000.0
HOUR = 3600.0


def main(entry_id: str, artist: str = "") -> QueueEntry:
    return QueueEntry(entry_id, source=f"src-{entry_id}", title=entry_id, artist=artist or f"artist-{entry_id}")


def paid(entry_id: str, at: float) -> QueueEntry:
    return QueueEntry(entry_id, source=f"src-{entry_id}", kind=EntryKind.PRIORITY, requested_at=at)


def played(entry: QueueEntry, minutes_ago: float) -> Play:
    return Play.of(entry, NOW - minutes_ago * 60)


A, B, C, D = main("a", "Abba"), main("b", "Blur"), main("c", "Abba"), main("d", "Cher")
PLAYLIST = [A, B, C, D]


@pytest.mark.parametrize(
    ("history", "rules", "unplayable", "expected"),
    [
        pytest.param([], RotationRules(), (), "a", id="fresh-start-plays-the-first"),
        pytest.param([played(A, 90)], RotationRules(), (), "b", id="continues-after-the-last-played"),
        pytest.param([played(D, 90)], RotationRules(), (), "a", id="wraps-around-at-the-end"),
        pytest.param([played(A, 9), played(B, 5)], RotationRules(), (), "d",
                     id="skips-an-artist-heard-in-the-last-two-plays"),
        pytest.param([played(A, 9), played(B, 5)], RotationRules(artist_separation=0), (), "c",
                     id="artist-separation-off"),
        pytest.param([played(C, 30), played(D, 20), played(A, 10)], RotationRules(repeat_window_s=HOUR), (), "b",
                     id="rotation-order-when-all-fresh-enough"),
        pytest.param([played(B, 50), played(C, 40), played(D, 30), played(A, 20)],
                     RotationRules(repeat_window_s=45 * 60), (), "b",
                     id="played-longer-ago-than-the-window-may-repeat"),
        pytest.param([played(A, 40), played(B, 30), played(C, 20), played(D, 10)],
                     RotationRules(repeat_window_s=HOUR), (), "a",
                     id="all-within-window-least-recently-played-wins"),
        pytest.param([played(B, 9)], RotationRules(), ("src-c",), "d", id="unplayable-sources-are-skipped"),
        pytest.param([], RotationRules(), ("src-a", "src-b", "src-c", "src-d"), None,
                     id="nothing-playable-means-nothing"),
        pytest.param([played(A, 10), played(D, 5)], RotationRules(repeat_window_s=HOUR, artist_separation=3), (),
                     "b", id="artist-rule-gives-way-before-the-repeat-rule"),
    ],
)
def test_next_main(history: list[Play], rules: RotationRules, unplayable: tuple[str, ...],
                   expected: str | None) -> None:
    chosen = next_main(PLAYLIST, history, rules, NOW, unplayable)
    assert (chosen.entry_id if chosen else None) == expected


def test_artist_rule_gives_way_when_every_fresh_track_shares_the_artist() -> None:
    same = [main("x", "Abba"), main("y", "Abba")]
    chosen = next_main(same, [played(same[0], 1)], RotationRules(repeat_window_s=60), NOW)
    assert chosen is not None and chosen.entry_id == "y"


@pytest.mark.parametrize(
    ("requests", "skip", "expected"),
    [
        pytest.param([], (), None, id="none-waiting"),
        pytest.param([paid("late", 20), paid("early", 10)], (), "early", id="oldest-first"),
        pytest.param([paid("b", 10), paid("a", 10)], (), "a", id="same-second-by-id"),
        pytest.param([paid("early", 10), paid("late", 20)], ("early",), "late", id="skips-planned"),
    ],
)
def test_next_priority(requests: list[QueueEntry], skip: tuple[str, ...], expected: str | None) -> None:
    chosen = next_priority(requests, skip)
    assert (chosen.entry_id if chosen else None) == expected


def test_plan_puts_paid_requests_first_then_continues_the_rotation() -> None:
    requests = [paid("p2", 20), paid("p1", 10)]
    chosen = plan(requests, PLAYLIST, [played(A, 90)], RotationRules(), NOW, count=4)
    assert [e.entry_id for e in chosen] == ["p1", "p2", "b", "c"]


def test_plan_spaces_artists_across_history_and_planned_entries() -> None:
    # c (Abba) would follow a (Abba, played last) within two plays, so d (Cher) comes first; a then
    # follows d, because b and d have been planned in between.
    chosen = plan([], PLAYLIST, [played(A, 90)], RotationRules(repeat_window_s=0), NOW, count=3)
    assert [e.entry_id for e in chosen] == ["b", "d", "a"]


def test_plan_treats_planned_entries_as_just_played() -> None:
    chosen = plan([], [A, B], [], RotationRules(repeat_window_s=HOUR, artist_separation=0), NOW, count=3)
    assert [e.entry_id for e in chosen] == ["a", "b", "a"]


def test_plan_skips_unplayable_paid_requests_and_stops_when_nothing_is_left() -> None:
    chosen = plan([paid("p", 1)], [A], [], RotationRules(), NOW, count=3, unplayable={"src-p", "src-a"})
    assert chosen == []
