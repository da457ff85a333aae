"""The cue rules on silences already found (pure, table-driven; times in seconds of track time)."""

from __future__ import annotations

import pytest

from djamms_edge.edge.media.analysis import (
    Cues,
    Window,
    decide,
    join_clicks,
    silence_threshold_db,
    to_track_time,
    wider_head_length,
    wider_tail_start,
)
from djamms_edge.edge.media.config import AnalysisConfig
from djamms_edge.edge.media.ffparse import Silence as S
from djamms_edge.edge.media.ffparse import parse_silences

CONFIG = AnalysisConfig()  # cue-in limit max(3 s, 5 %)
D = 200.0  # a track of 200 s: head window 0-20, tail window 160-200


def head(*silences: S, end: float = 20.0) -> Window:
    return Window(0.0, end, silences)


def tail(*silences: S, start: float = 160.0, end: float = D) -> Window:
    return Window(start, end, silences)


@pytest.mark.parametrize(
    ("h", "t", "cues"),
    [
        (head(), tail(), Cues(0.0, 200.0)),
        (head(S(0.0, 2.5)), tail(), Cues(2.5, 200.0)),
        (head(), tail(S(190.0, None)), Cues(0.0, 190.0)),
        # ffmpeg >= 5 closes a silence at the end of the input: the same as an open one.
        (head(), tail(S(190.0, 200.0)), Cues(0.0, 190.0)),
        # Silence in the middle of a window is music, not a boundary.
        (head(S(5.0, 9.0)), tail(S(170.0, 175.0)), Cues(0.0, 200.0)),
        # A silence touching the head window's end is not at the track's start.
        (head(S(12.0, None)), tail(), Cues(0.0, 200.0)),
        # The tail window starts inside a pause; only the silence touching the end counts.
        (head(), tail(S(160.0, 163.0), S(195.0, None)), Cues(0.0, 195.0)),
        # Decoders start a few ms late (Opus pre-skip): a silence from 7.5 ms still touches the start.
        (head(S(0.0075, 2.0)), tail(), Cues(2.0, 200.0)),
        (head(S(0.2, 2.0)), tail(), Cues(0.0, 200.0)),  # sound before the pause: not leading silence
        # A cue-in beyond max(3 s, 5 % of 200 s = 10 s) is nonsense: rejected, with a reason.
        (head(S(0.0, 12.0)), tail(), Cues(0.0, 200.0, ("cue-in 12.00s rejected (limit 10.00s)",))),
        (head(S(0.0, 9.5)), tail(), Cues(9.5, 200.0)),
        # Audio that ends before the container says (a video longer than its sound): end of audio.
        (head(), tail(end=198.0), Cues(0.0, 198.0)),
        # A click (a DC step through the high-pass) between two silences is not sound...
        (head(S(0.0, 1.0), S(1.004, 2.0)), tail(S(190.0, 195.0), S(195.002, None)), Cues(2.0, 190.0)),
        # ...but 50 ms of sound is.
        (head(S(0.0, 1.0), S(1.05, 2.0)), tail(S(190.0, 195.0), S(195.05, None)), Cues(1.0, 195.05)),
    ],
    ids=[
        "no-silence", "leading", "trailing-open", "trailing-closed-at-eof", "middle-ignored",
        "head-end-not-start", "tail-starts-in-pause", "opus-preskip", "sound-first", "late-cue-in-rejected",
        "cue-in-within-5-percent", "audio-shorter-than-container", "click-ignored", "short-sound-kept",
    ],
)  # fmt: skip
def test_decide(h: Window, t: Window, cues: Cues) -> None:
    assert decide(D, h, t, CONFIG) == cues


def test_a_short_track_seen_whole() -> None:
    whole = Window(0.0, 4.5, [S(0.0, 0.5), S(3.5, None)])
    assert decide(4.5, whole, whole, CONFIG) == Cues(0.5, 3.5)


def test_a_silent_track_plays_whole_and_says_so() -> None:
    whole = Window(0.0, 30.0, [S(0.0, None)])
    assert decide(30.0, whole, whole, CONFIG) == Cues(0.0, 30.0, ("silent",))


def test_cues_leaving_almost_nothing_are_ignored() -> None:
    whole = Window(0.0, 30.0, [S(0.0, 2.0), S(2.5, None)])
    cues = decide(30.0, whole, whole, CONFIG)
    assert (cues.real_start, cues.real_end) == (0.0, 30.0)
    assert "leave almost nothing" in cues.notes[0]


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (tail(S(160.0, None)), 120.0),  # silent from its first sample: twice as wide
        (tail(S(160.03, None)), 120.0),  # within the edge tolerance
        (tail(S(165.0, None)), None),  # sound before the silence: the end is found
        (tail(), None),
        (tail(S(0.0, None), start=0.0), None),  # already the whole track
        (tail(S(100.0, None), start=100.0), 0.0),  # never before the start
    ],
)
def test_wider_tail_start(window: Window, expected: float | None) -> None:
    assert wider_tail_start(D, window) == expected


@pytest.mark.parametrize(
    ("duration", "window", "expected"),
    [
        (200.0, head(S(0.0, None)), None),  # limit 10 s < 20 s window: a silent head means "rejected"
        (600.0, head(S(0.0, None)), 31.0),  # limit 30 s: look until 31 s to know if the cue-in is acceptable
        (600.0, head(S(0.0, 5.0)), None),
        (600.0, head(S(0.0, None), end=31.0), None),  # already long enough
    ],
)
def test_wider_head_length(duration: float, window: Window, expected: float | None) -> None:
    assert wider_head_length(duration, window, CONFIG) == expected


@pytest.mark.parametrize(
    ("loudness", "threshold"),
    [
        (None, -60.0),
        (-14.0, -60.0),  # only ever lowered...
        (-30.0, -72.0),  # ...for quiet tracks the player raises
        (-45.0, -80.0),  # but never under the floor: a raised noise floor is not music
    ],
)
def test_silence_threshold(loudness: float | None, threshold: float) -> None:
    assert silence_threshold_db(CONFIG, loudness) == threshold


def test_window_times_are_mapped_to_track_time() -> None:
    assert to_track_time([S(1.5, 2.0), S(9.0, None)], 160.0) == [S(161.5, 162.0), S(169.0, None)]


@pytest.mark.parametrize(
    ("silences", "joined"),
    [
        ([S(1.0, 2.0), S(2.01, None)], [S(1.0, None)]),  # one sample's click: one 10 ms window of energy
        ([S(1.0, 2.0), S(2.025, None)], [S(1.0, None)]),  # exactly a click apart
        ([S(1.0, 2.0), S(2.026, None)], [S(1.0, 2.0), S(2.026, None)]),
        ([S(0.0, 1.0), S(1.001, 2.0), S(2.002, 3.0)], [S(0.0, 3.0)]),
        ([], []),
    ],
)
def test_join_clicks(silences: list[S], joined: list[S]) -> None:
    assert join_clicks(silences) == joined


# ffmpeg 5.1 on the tail window (the last 10 s, from 6.0 s) of a track whose music stops dead at
# 10.0 s over a -50 dBFS DC offset that stops at 13.0 s (tests' "dc_end", AAC), at -60 dBFS.
# Filtered forwards, the high-pass rings 12 ms past the stop and turns the DC step into a click after it:
RECORDED_TAIL_FORWARDS = """\
[silencedetect @ 0x55873399a480] silence_start: 4.01206
[silencedetect @ 0x55873399a480] silence_end: 7 | silence_duration: 2.98794
[silencedetect @ 0x55873399a480] silence_start: 7.00113
[silencedetect @ 0x55873399a480] silence_end: 10 | silence_duration: 2.99887
"""
# Filtered backwards (areverse,highpass,areverse): both fall before what caused them, the ringing
# under the music, the click just before the step (areverse holds its output back until the end):
RECORDED_TAIL_BACKWARDS = """\
[silencedetect @ 0x55817d01b3c0] silence_start: 4.00006
[silencedetect @ 0x55817d01b3c0] silence_end: 6.99887 | silence_duration: 2.99881
[silencedetect @ 0x55817d01b3c0] silence_start: 7
size=N/A time=00:00:10.00 bitrate=N/A speed= 783x
video:0kB audio:312kB subtitle:0kB other streams:0kB global headers:0kB muxing overhead: unknown
[silencedetect @ 0x55817d01b3c0] silence_end: 10 | silence_duration: 3
"""


@pytest.mark.parametrize(
    ("stderr", "real_end"), [(RECORDED_TAIL_FORWARDS, 10.012), (RECORDED_TAIL_BACKWARDS, 10.0)], ids=["fwd", "bwd"]
)
def test_recorded_tail_windows(stderr: str, real_end: float) -> None:
    tail_window = Window(6.0, 16.0, to_track_time(parse_silences(stderr), 6.0))
    assert decide(16.0, head(end=8.0), tail_window, CONFIG) == Cues(0.0, real_end)
