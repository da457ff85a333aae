"""Parsers of ffmpeg's output, fed text recorded from ffmpeg 5.1."""

from __future__ import annotations

import pytest

from djamms_edge.edge.media.ffparse import (
    Silence,
    parse_decoded_until,
    parse_integrated_loudness,
    parse_silences,
    summarize_error,
)

RECORDED_WINDOW = """\
Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'file:/tmp/mx/t2.mp4':
  Duration: 00:00:28.50, start: 0.000000, bitrate: 103 kb/s
  Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 48000 Hz, stereo, fltp, 81 kb/s (default)
[silencedetect @ 0x5557c8d79340] silence_start: 0
[silencedetect @ 0x5557c8d79340] silence_end: 1.999 | silence_duration: 1.999
[silencedetect @ 0x5557c8d79340] silence_start: 7.98006
size=N/A time=00:00:12.01 bitrate=N/A speed= 611x
video:0kB audio:469kB subtitle:0kB other streams:0kB global headers:0kB muxing overhead: unknown
[silencedetect @ 0x5557c8d79340] silence_end: 12.0107 | silence_duration: 4.03062
"""

RECORDED_PROGRESS = """\
out_time_us=20313
out_time_ms=20313
progress=continue
bitrate=N/A
out_time_us=15018688
out_time_ms=15018688
out_time=00:00:15.018688
progress=end
"""

RECORDED_EBUR128 = """\
[Parsed_ebur128_0 @ 0x563d27bb36c0] Summary:

  Integrated loudness:
    I:         -10.8 LUFS
    Threshold: -21.3 LUFS

  Loudness range:
    LRA:        11.9 LU
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (RECORDED_WINDOW, [Silence(0.0, 1.999), Silence(7.98006, 12.0107)]),
        ("[silencedetect @ 0x1] silence_start: 3.5\n", [Silence(3.5, None)]),  # still silent at the end
        (
            "[silencedetect @ 0x1] silence_start: -0.0213\n[silencedetect @ 0x1] silence_end: 1 | x\n",
            [Silence(0.0, 1.0)],
        ),  # a slightly negative start (decoder delay) is clamped to 0
        ("[silencedetect @ 0x1] silence_end: 2 | silence_duration: 2\n", []),  # an end without a start
        ("no silence here\n", []),
    ],
    ids=["recorded", "open-at-eof", "negative-start", "stray-end", "none"],
)
def test_parse_silences(text: str, expected: list[Silence]) -> None:
    assert parse_silences(text) == expected


def test_parse_decoded_until_takes_the_last_report() -> None:
    assert parse_decoded_until(RECORDED_PROGRESS) == pytest.approx(15.018688)
    assert parse_decoded_until("progress=end\n") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (RECORDED_EBUR128, -10.8),
        (RECORDED_EBUR128.replace("-10.8", "-70.0"), None),  # the absolute gate: nothing measurable
        ("", None),
    ],
)
def test_parse_integrated_loudness(text: str, expected: float | None) -> None:
    assert parse_integrated_loudness(text) == expected


@pytest.mark.parametrize(
    ("stderr", "message"),
    [
        (
            "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55] moov atom not found\n"
            "file:/x/a.mp4: Invalid data found when processing input\n",
            "not a readable media file (moov atom not found)",
        ),
        ("file:/x/a.txt: Invalid data found when processing input\n", "not a readable media file"),
        (
            "Stream map '0:a:0' matches no streams.\nTo ignore this, add a trailing '?' to the map.\n",
            "has no audio stream",
        ),
        (
            "[http @ 0x1] HTTP error 404 Not Found\nhttp://h/x.mp4: Server returned 404 Not Found\n",
            "http://h/x.mp4: Server returned 404 Not Found",
        ),
        ("", "not a readable media file"),
    ],
    ids=["moov", "invalid-data", "no-audio", "http-404", "silent-failure"],
)
def test_summarize_error(stderr: str, message: str) -> None:
    assert summarize_error(stderr) == message
