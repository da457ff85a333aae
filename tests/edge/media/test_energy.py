"""energy: the high-pass against a plain recursion and against ffmpeg's own, and silences() on tables of signals."""

from __future__ import annotations

import math
import subprocess

import numpy as np
import pytest

from djamms_edge.edge.media import energy
from djamms_edge.edge.media.energy import _one_pole, highpass, mean_square, silences
from djamms_edge.edge.media.ffparse import Silence
from tests.edge.media.rms_reference import tool

RATE = 16000


def _recursion(u: np.ndarray, pole: complex) -> np.ndarray:
    out, state = np.empty(len(u), dtype=complex), 0j
    for index, value in enumerate(u.tolist()):
        state = pole * state + value
        out[index] = state
    return out


@pytest.mark.parametrize(
    ("rate", "hz", "length"),
    [(16000, 80.0, 20000), (44100, 20.0, 9000), (8000, 500.0, 3001), (48000, 80.0, 5), (16000, 80.0, 1)],
)
def test_the_blockwise_one_pole_is_the_recursion(rate: int, hz: float, length: int) -> None:
    # The poles of the high-passes we run: slow ones (long blocks) and a fast one (blocks of ~30 samples).
    radius = math.exp(-2 * math.pi * hz * math.sqrt(0.5) / rate)
    pole = radius * complex(math.cos(0.3 * hz / rate), math.sin(0.3 * hz / rate))
    u = np.random.default_rng(7).standard_normal(length)
    assert np.allclose(_one_pole(u, pole), _recursion(u, pole), rtol=0, atol=1e-9)


@pytest.mark.parametrize(("rate", "hz"), [(16000, 80.0), (44100, 80.0), (22050, 20.0)])
def test_the_high_pass_is_ffmpegs(rate: int, hz: float) -> None:
    # Real ffmpeg: the same noise through its `highpass` filter (float32) and through ours (float64).
    noise = np.random.default_rng(1).standard_normal(rate).astype(np.float32) * np.float32(0.1)
    theirs = subprocess.run(
        [tool("ffmpeg"), "-v", "error", "-f", "f32le", "-ar", str(rate), "-ac", "1", "-i", "pipe:0",
         "-af", f"highpass=f={hz:g}", "-f", "f32le", "pipe:1"],
        input=noise.tobytes(), capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    ours = highpass(noise.astype(np.float64), rate, hz)
    assert np.abs(ours - np.frombuffer(theirs, "<f4")).max() < 1e-5


def test_the_high_pass_takes_dc_away() -> None:
    # A -40 dBFS DC offset: after the first ~20 ms (the step at the start rings) nothing is left.
    out = highpass(np.full(RATE, 0.01), RATE, 80.0)
    assert np.abs(out[RATE // 10 :]).max() < 1e-7


def test_mean_square_is_a_sliding_box_over_the_samples_ending_there() -> None:
    assert mean_square(np.array([2.0, 0.0, 0.0, 4.0]), 2).tolist() == [2.0, 2.0, 0.0, 8.0]


def _signal(*parts: tuple[float, float]) -> np.ndarray:
    """(seconds, RMS dBFS) parts of a 1 kHz tone; -inf dBFS is digital silence."""
    pieces = []
    for seconds, level_db in parts:
        count = round(seconds * RATE)
        amplitude = 0.0 if level_db == -math.inf else math.sqrt(2) * 10 ** (level_db / 20)
        pieces.append(amplitude * np.sin(2 * np.pi * 1000 * np.arange(count) / RATE))
    return np.concatenate(pieces)


SILENT = -math.inf
WINDOW = 0.01


@pytest.mark.parametrize(
    ("parts", "backwards", "expected"),
    [
        # A hard stop filtered backwards is found to the sample; forwards, the box holds it one window longer.
        ([(1.0, -20), (1.0, SILENT)], True, [Silence(1.0, None)]),
        ([(1.0, -20), (1.0, SILENT)], False, [Silence(1.0 + WINDOW, None)]),
        # An onset filtered forwards is exact; backwards, the box sees it one window early.
        ([(1.0, SILENT), (1.0, -20)], False, [Silence(0.0, 1.0)]),
        ([(1.0, SILENT), (1.0, -20)], True, [Silence(0.0, 1.0 - WINDOW)]),
        # Quiet but over the threshold is sound (but for the last windows, 2 dB under it once 37 % of them
        # is silence); just under the threshold is silence.
        ([(1.0, -20), (1.0, -58), (1.0, SILENT)], True, [Silence(2.0 - WINDOW * 10 ** (-2 / 10), None)]),
        ([(1.0, -20), (1.0, -62), (1.0, SILENT)], True, [Silence(1.0, None)]),
        # A pause shorter than min_silence (0.1 s) is no silence; one as long is.
        ([(1.0, -20), (0.09, SILENT), (1.0, -20)], True, []),
        ([(1.0, -20), (0.2, SILENT), (1.0, -20)], True, [Silence(1.0, 1.2 - WINDOW)]),
        ([(0.5, SILENT)], False, [Silence(0.0, None)]),
    ],
)
def test_silences(parts: list[tuple[float, float]], backwards: bool, expected: list[Silence]) -> None:
    found = silences(_signal(*parts), RATE, threshold_db=-60.0, min_silence_seconds=0.1, backwards=backwards)
    assert len(found) == len(expected)
    for got, want in zip(found, expected, strict=True):
        assert got.start == pytest.approx(want.start, abs=2.5 / RATE)  # a sine starts at 0: its first sample is silent
        assert (got.end is None) == (want.end is None)
        if got.end is not None and want.end is not None:
            assert got.end == pytest.approx(want.end, abs=2.5 / RATE)  # a sine starts at 0: its first sample is silent


def test_a_single_sample_click_is_a_window_of_sound() -> None:
    # A click in silence: one window of energy (diluted 160-fold: -0.0 dBFS becomes -22 dBFS), which the
    # analysis rule then joins away (analysis.join_clicks).
    samples = np.zeros(RATE)
    samples[RATE // 2] = 1.0
    found = silences(samples, RATE, threshold_db=-60.0, min_silence_seconds=0.1)
    assert found == [Silence(0.0, 0.5), Silence(0.5 + WINDOW, None)]


@pytest.mark.parametrize(("highpass_hz", "silent_from"), [(80.0, 1.0), (0.0, 2.0)])
def test_rumble_under_the_high_pass_is_not_sound(highpass_hz: float, silent_from: float) -> None:
    # 25 Hz at -50 dBFS under the end of the music for a second: sound only without the high-pass.
    music = _signal((1.0, -20), (2.0, SILENT))
    rumble = 0.003 * np.sin(2 * np.pi * 25 * np.arange(len(music)) / RATE) * (np.arange(len(music)) < 2 * RATE)
    found = silences(music + rumble, RATE, threshold_db=-60.0, min_silence_seconds=0.1,
                     highpass_hz=highpass_hz, backwards=True)  # fmt: skip
    assert found[-1].end is None
    assert found[-1].start == pytest.approx(silent_from, abs=0.02)


@pytest.mark.parametrize("backwards", [False, True])
@pytest.mark.parametrize("highpass_hz", [80.0, 5.0, 0.0])
def test_long_windows_computed_in_pieces_find_the_same_silences(
    backwards: bool, highpass_hz: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 2 minutes of bursts, quiet stretches and pauses of every length, read at once and in 7 s pieces.
    rng = np.random.default_rng(3)
    parts = [(float(rng.uniform(0.05, 3.0)), float(rng.choice([-20.0, -50.0, -70.0, SILENT]))) for _ in range(80)]
    samples = _signal(*parts).astype(np.float32)
    monkeypatch.setattr(energy, "SEGMENT_SECONDS", 1e6)
    whole = silences(samples, RATE, threshold_db=-60.0, min_silence_seconds=0.1,
                     highpass_hz=highpass_hz, backwards=backwards)  # fmt: skip
    monkeypatch.setattr(energy, "SEGMENT_SECONDS", 7.0)
    pieces = silences(samples, RATE, threshold_db=-60.0, min_silence_seconds=0.1,
                      highpass_hz=highpass_hz, backwards=backwards)  # fmt: skip
    assert len(whole) > 10
    assert pieces == whole
