"""The hub's pure rules, table-driven: request refusals, master election, trimmed durations, start estimates."""

from __future__ import annotations

import pytest

from djamms_edge.hub.ratelimit import TokenBuckets
from djamms_edge.hub.rules import (
    analyses_agree,
    artist_key,
    decide_register,
    decide_release,
    estimate_start_times,
    paid_request_refusal,
    plausible_analysis,
    play_seconds,
    shared_by_agreement,
)
from djamms_edge.hub.store.base import Analysis, CatalogTrack, KnownDuration, MasterInfo, Offsets, RequestRules

RULES = RequestRules(max_duration_s=300, artist_limit=3, artist_window_ms=1_800_000)


@pytest.mark.parametrize(
    ("duration", "same_artist", "expected"),
    [
        (213, 0, None),
        (300, 2, None),  # exactly five minutes is allowed; the reference refuses only > 300
        (300.5, 0, "Song duration exceeds 5 minutes"),
        (213, 3, "Too many requests for this artist in the last 30 minutes"),
        (213, 7, "Too many requests for this artist in the last 30 minutes"),
        (301, 5, "Song duration exceeds 5 minutes"),  # the duration is checked first, as in the reference
    ],
)
def test_paid_request_refusal(duration: float, same_artist: int, expected: str | None) -> None:
    assert paid_request_refusal(duration, same_artist, RULES) == expected


def test_refusal_texts_follow_configured_limits() -> None:
    rules = RequestRules(max_duration_s=240, artist_limit=1, artist_window_ms=3_600_000)
    assert paid_request_refusal(241, 0, rules) == "Song duration exceeds 4 minutes"
    assert paid_request_refusal(10, 1, rules) == "Too many requests for this artist in the last 60 minutes"


@pytest.mark.parametrize(("a", "b"), [("ABBA", "abba"), ("  The  Beatles ", "the beatles"), ("Beyoncé", "BEYONCÉ")])
def test_artist_names_compare_loosely(a: str, b: str) -> None:
    assert artist_key(a) == artist_key(b)


MASTER = MasterInfo(device_id="box-a", epoch=4, last_heartbeat_ms=1_000_000, player_id="p1")


@pytest.mark.parametrize(
    ("master", "device", "now_ms", "expected"),
    [
        (None, "box-b", 1_000_000, "register"),
        (MASTER, "box-a", 1_000_000, "reconnect"),
        (MASTER, "box-a", 9_000_000, "reconnect"),  # its own stale lease: reconnect, keep the epoch
        (MASTER, "box-b", 1_000_000 + 119_999, "conflict"),
        (MASTER, "box-b", 1_000_000 + 120_000, "takeover"),
    ],
)
def test_decide_register(master: MasterInfo | None, device: str, now_ms: int, expected: str) -> None:
    assert decide_register(master, device, now_ms, stale_ms=120_000) == expected


HELD = MasterInfo(device_id="box-a", epoch=4, last_heartbeat_ms=1_000_000, player_id="p1", instance_id="proc-1")


@pytest.mark.parametrize(
    ("master", "instance", "now_ms", "expected"),
    [
        (HELD, "proc-1", 1_005_000, "reconnect"),  # the holding process itself
        (HELD, "proc-2", 1_005_000, "second_process"),  # a copy while the holder beats
        (HELD, "proc-2", 1_014_999, "second_process"),
        (HELD, "proc-2", 1_015_000, "reconnect"),  # the holder went quiet: a restarted daemon takes over
        (HELD, None, 1_005_000, "reconnect"),  # a client that names no process (older edges, browsers)
        (MASTER, "proc-2", 1_005_000, "reconnect"),  # a lease taken by such a client
    ],
)
def test_decide_register_refuses_a_second_process(master: MasterInfo, instance: str | None, now_ms: int,
                                                  expected: str) -> None:
    assert decide_register(master, "box-a", now_ms, 120_000, instance, instance_grace_ms=15_000) == expected


@pytest.mark.parametrize(
    ("master", "device", "instance", "now_ms", "expected"),
    [
        (None, "box-a", "proc-1", 1_005_000, "not_holder"),
        (HELD, "box-b", "proc-1", 1_005_000, "not_holder"),  # another device holds nothing to release
        (HELD, "box-a", "proc-1", 1_005_000, "release"),  # the holding process
        (HELD, "box-a", "proc-2", 1_005_000, "second_process"),  # a copy while the holder beats
        (HELD, "box-a", "proc-2", 1_014_999, "second_process"),
        (HELD, "box-a", "proc-2", 1_015_000, "release"),  # the holder went quiet: its successor may release
        (HELD, "box-a", None, 1_005_000, "release"),  # a client that names no process
        (MASTER, "box-a", "proc-2", 1_005_000, "release"),  # a lease taken by such a client
    ],
)
def test_decide_release_refuses_a_second_process(master: MasterInfo | None, device: str, instance: str | None,
                                                 now_ms: int, expected: str) -> None:
    assert decide_release(master, device, now_ms, instance, instance_grace_ms=15_000) == expected


@pytest.mark.parametrize(
    ("duration", "offsets", "expected"),
    [
        (200.0, None, 200.0),
        (200.0, Offsets(None, None), 200.0),
        (200.0, Offsets(3.5, None), 196.5),
        (200.0, Offsets(None, 190.0), 190.0),
        (200.0, Offsets(2.0, 190.0), 188.0),
        (200.0, Offsets(0.0, 250.0), 200.0),  # an end past the file is clamped
        (200.0, Offsets(210.0, 190.0), 0.0),  # nonsense never goes negative
    ],
)
def test_play_seconds(duration: float, offsets: Offsets | None, expected: float) -> None:
    assert play_seconds(duration, offsets) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("now", "current_ends", "durations", "expected"),
    [
        (1000, None, [10, 20], [1000, 11_000]),
        (1000, 5000, [10, 20], [5000, 15_000]),
        (9000, 5000, [1.5], [9000]),  # the current track overran its estimate: next starts "now"
        (1000, None, [], []),
    ],
)
def test_estimate_start_times(now: int, current_ends: int | None, durations: list[float], expected: list[int]) -> None:
    assert estimate_start_times(now, current_ends, durations) == expected


@pytest.mark.parametrize(
    ("analysis", "override", "expected"),
    [
        (Offsets(1.0, 180.0), None, Offsets(1.0, 180.0)),
        (Offsets(1.0, 180.0), Offsets(5.0, 170.0), Offsets(5.0, 170.0)),
        (Offsets(1.0, 180.0), Offsets(None, 170.0), Offsets(1.0, 170.0)),  # override wins field by field
        (Offsets(None, None), Offsets(2.0, None), Offsets(2.0, None)),
    ],
)
def test_override_wins_over_analysis(analysis: Offsets, override: Offsets | None, expected: Offsets) -> None:
    track = CatalogTrack("dQw4w9WgXcQ", 200.0, analysis, -14.0, override, "box")
    assert track.effective == expected


def test_token_bucket_spends_and_refills() -> None:
    buckets = TokenBuckets(capacity=3, per_seconds=60)
    assert [buckets.take("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert buckets.take("b", 0.0)  # keys are independent
    assert not buckets.take("a", 19.0)
    assert buckets.take("a", 20.0)  # one token back after a third of the window


def test_token_bucket_forgets_refilled_keys_when_full() -> None:
    buckets = TokenBuckets(capacity=1, per_seconds=10, max_keys=2)
    assert buckets.take("a", 0.0) and buckets.take("b", 0.0)
    assert buckets.take("c", 100.0)  # a and b have refilled: forgotten to make room
    assert not buckets.take("c", 100.0)


def _measured(duration: float | None, start: float | None, end: float | None) -> Analysis:
    return Analysis("dQw4w9WgXcQ", duration, start, end, None, "box", "v")


@pytest.mark.parametrize(
    ("a", "b", "agree"),
    [
        (_measured(240, 0.4, 231.5), _measured(240.5, 0.6, 231.9), True),
        (_measured(240, 0.4, 231.5), _measured(240, 0.4, 232.1), False),  # cue-out 0.6 s apart
        (_measured(240, 0.4, 231.5), _measured(242, 0.4, 231.5), False),  # another upload of the video
        (_measured(240, None, 231.5), _measured(240, None, 231.5), True),
        (_measured(240, None, 231.5), _measured(240, 0.4, 231.5), False),
    ],
)
def test_analyses_agree(a: Analysis, b: Analysis, agree: bool) -> None:
    assert analyses_agree(a, b) is agree and analyses_agree(b, a) is agree


ADMIN_213 = KnownDuration(213.0, None)  # an admin measured it
OTHER_213 = KnownDuration(213.0, "w")  # venue w's staff declared 3:33
OWN_1 = KnownDuration(1.0, "v")  # the reporting venue's own staff


@pytest.mark.parametrize(
    ("analysis", "known", "plausible"),
    [
        (_measured(1, 0, 1), [], True),  # nothing known: agreement of two venues decides alone
        (_measured(1, 0, 1), [OTHER_213], False),  # a one-second cut of a song another venue knows is 3:33
        (_measured(1, 0, 1), [ADMIN_213], False),
        (_measured(1, 0, 1), [OWN_1], True),  # its own venue vouches for nothing
        (_measured(1, 0, 1), [OWN_1, OTHER_213], False),
        (_measured(240, 0.4, 231.5), [OTHER_213], True),  # a music video's outro: within 15 %
        (_measured(246, 0.4, 240), [OTHER_213], False),  # 33 s over 213 (slack 31.95 s)
        (_measured(213, 0, 213), [KnownDuration(60.0, "w")], False),
        (_measured(70, 0, 70), [KnownDuration(60.0, "w")], True),  # 20 s at least
        (_measured(213, 150, 151), [OTHER_213], False),  # a true duration, cue points cutting it to a second
        (_measured(None, 200, 201), [OTHER_213], False),
        (_measured(None, 0.5, 210), [OTHER_213], True),
        (_measured(213, 0.4, 211), [OTHER_213, KnownDuration(30.0, "x")], False),  # every trusted length counts
    ],
)
def test_plausible_analysis(analysis: Analysis, known: list[KnownDuration], plausible: bool) -> None:
    assert plausible_analysis(analysis, known) is plausible


def test_two_venues_agreeing_share_only_what_is_plausible() -> None:
    theirs = Analysis("dQw4w9WgXcQ", 1, 0, 1, None, "box-x", "x")
    assert shared_by_agreement(_measured(1, 0, 1), [theirs], [])
    assert not shared_by_agreement(_measured(1, 0, 1), [theirs], [OTHER_213])
    # x's own staff declared 1 s: its box is still checked against w's 3:33
    assert not shared_by_agreement(_measured(1, 0, 1), [theirs], [OTHER_213, KnownDuration(1.0, "x")])
    assert shared_by_agreement(_measured(214, 0.4, 212), [Analysis("dQw4w9WgXcQ", 214.3, 0.5, 212.2, None, "b", "x")],
                               [OTHER_213])
