"""energy: silences() on tables of signals, through the real libavfilter graph (numpy only builds the signals)."""

from __future__ import annotations

import itertools
import math
from array import array
from typing import cast

import numpy as np
import pytest

from djamms_edge.edge.media import energy
from djamms_edge.edge.media.ffparse import Silence

RATE = 16000


def silences(samples: np.ndarray, rate: float, **options: float | bool) -> list[Silence]:
    """energy.silences on ``samples`` as the decoder hands them over: float32 in an array."""
    return energy.silences(array("f", samples.astype(np.float32).tobytes()), rate, **options)  # type: ignore[arg-type]


def _signal(*parts: tuple[float, float], rate: float = RATE) -> np.ndarray:
    """(seconds, RMS dBFS) parts of a 1 kHz tone; -inf dBFS is digital silence."""
    pieces = []
    for seconds, level_db in parts:
        count = round(seconds * rate)
        amplitude = 0.0 if level_db == -math.inf else math.sqrt(2) * 10 ** (level_db / 20)
        pieces.append(amplitude * np.sin(2 * np.pi * 1000 * np.arange(count) / rate))
    return np.concatenate(pieces)


SILENT = -math.inf
WINDOW = 0.01


def near(value: float, tolerance: float) -> float:
    """``pytest.approx`` in a float's place in a ``Silence``: equal to any float within ``tolerance``."""
    return cast(float, pytest.approx(value, abs=tolerance))


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


@pytest.mark.parametrize(("level_db", "silent"), [(-59.9, False), (-60.1, True), (-79.9, False), (-80.1, True)])
@pytest.mark.parametrize("highpass_hz", [80.0, 0.0])
def test_the_threshold_holds_to_a_tenth_of_a_db(level_db: float, silent: bool, highpass_hz: float) -> None:
    # A steady tone 0.1 dB either side of the threshold (-60 dBFS, and the -80 dBFS floor): the box's gain
    # and the threshold's scale (a power ratio on the squared signal) are exact, with or without the high-pass.
    # After the onset the box must fill to 10^(-0.1/10) = 98 % of a window before the mean crosses.
    threshold = -60.0 if level_db > -70 else -80.0
    crossing = 0.5 + WINDOW * 10 ** ((threshold - level_db) / 10)
    found = silences(_signal((0.5, SILENT), (2.0, level_db)), RATE, threshold_db=threshold,
                     min_silence_seconds=0.1, highpass_hz=highpass_hz)  # fmt: skip
    assert found[0].start == 0.0
    if silent:
        assert found == [Silence(0.0, None)]
    else:
        assert found == [Silence(0.0, near(crossing, 2.5 / RATE))]


@pytest.mark.parametrize("threshold_db", [-60.0, -80.0, -100.0])
def test_digital_silence_after_loud_music_is_silence_at_every_threshold(threshold_db: float) -> None:
    # Noise at -6 dBFS, then digital silence: the trailing silence starts at the stop, to the sample (the
    # box convolves in double precision; in single precision it left -75 dB of the noise's energy behind).
    noise = np.random.default_rng(5).standard_normal(2 * RATE) * 0.5
    samples = np.concatenate((noise, np.zeros(RATE)))
    found = silences(samples, RATE, threshold_db=threshold_db, min_silence_seconds=0.1, highpass_hz=80.0,
                     backwards=True)  # fmt: skip
    assert found[-1] == Silence(near(2.0, 1 / RATE), None)


def test_many_silences_close_together_are_each_found() -> None:
    # Twenty 0.15 s silences 0.05 s apart (several to a frame of samples handed to the graph), and a click in
    # each (a silence ending and the next starting within 10 ms): every one is found, in order.
    parts = [(0.05, -20.0), (0.15, SILENT)] * 20
    found = silences(_signal(*parts), RATE, threshold_db=-60.0, min_silence_seconds=0.1, backwards=True)
    assert len(found) == 20
    for index, silence in enumerate(found):
        assert silence.start == pytest.approx(0.2 * index + 0.05, abs=2.5 / RATE)
        assert silence.end == (None if index == 19 else pytest.approx(0.2 * index + 0.2 - WINDOW, abs=2.5 / RATE))
    clicks = np.zeros(4 * RATE)
    clicks[RATE // 4 :: RATE // 4] = 1.0  # a click every 0.25 s
    found = silences(clicks, RATE, threshold_db=-60.0, min_silence_seconds=0.1)
    assert len(found) == 16
    assert all(b.start - a.end == pytest.approx(WINDOW) for a, b in itertools.pairwise(found))  # type: ignore[operator]


def test_a_fractional_rate_keeps_its_time() -> None:
    # 44056 Hz thinned to every 3rd sample: 14685.33 samples a second. The graph runs at 14685 Hz; the answer
    # is in samples, so the stop is still found at its time.
    rate = 44056 / 3
    samples = _signal((10.0, -20), (2.0, SILENT), rate=rate)
    found = silences(samples, rate, threshold_db=-60.0, min_silence_seconds=0.1, highpass_hz=80.0, backwards=True)
    assert found == [Silence(near(10.0, 1.5 / rate), None)]


@pytest.mark.parametrize("backwards", [False, True])
@pytest.mark.parametrize("highpass_hz", [80.0, 5.0, 0.0])
def test_the_frame_size_does_not_show(backwards: bool, highpass_hz: float, monkeypatch: pytest.MonkeyPatch) -> None:
    # 2 minutes of bursts, quiet stretches and pauses of every length, handed over in big frames and in small ones.
    rng = np.random.default_rng(3)
    parts = [(float(rng.uniform(0.05, 3.0)), float(rng.choice([-20.0, -50.0, -70.0, SILENT]))) for _ in range(80)]
    samples = _signal(*parts)
    big = silences(samples, RATE, threshold_db=-60.0, min_silence_seconds=0.1,
                   highpass_hz=highpass_hz, backwards=backwards)  # fmt: skip
    monkeypatch.setattr(energy, "FRAME_SAMPLES", 999)
    small = silences(samples, RATE, threshold_db=-60.0, min_silence_seconds=0.1,
                     highpass_hz=highpass_hz, backwards=backwards)  # fmt: skip
    assert len(big) > 10
    assert small == big


def test_samples_other_than_float32_are_refused() -> None:
    # The graph reads the buffer as float32: doubles would be read as noise, so they are refused instead.
    with pytest.raises(TypeError, match="float32"):
        energy.silences(array("d", [0.0] * RATE), RATE, threshold_db=-60.0, min_silence_seconds=0.1)
