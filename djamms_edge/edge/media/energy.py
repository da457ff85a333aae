"""Where a window of decoded audio is silent: its 10 ms RMS energy under a threshold, computed by libavfilter.

``decoder`` hands over a window as mono float32 samples; ``silences()`` runs them through one filter graph
of FFmpeg's own filters (through PyAV, in this process; no I/O) and answers what ffmpeg's silencedetect
says about their short-window energy (the ``analysis`` rule takes it from there):

1. ``highpass``: the RBJ biquad (Q = 1/√2): rumble and DC are not sound. A DC offset is inaudible; a
   10 ms RMS reading that counts one keeps seconds of "sound" nobody hears after some MP3s' last note
   (measured on real recordings, see bench/analysis.py);
2. square (``asplit`` + ``amultiply``) and average over ENERGY_WINDOW_SECONDS at every sample (``afir``
   with a box of N taps of 1/N: a sliding box, not a 10 ms grid), so a hard stop or onset is found to
   the sample. The box convolves in double precision: in single precision its FFT leaves up to 3e-8
   (-75 dB) of loud music's energy in the digital silence after it, over the -80 dBFS floor;
3. ``silencedetect`` on that mean square: a run of at least ``min_silence_seconds`` under the threshold
   (as a power ratio, since the signal is already squared) is a silence.

Why libavfilter and not numpy: the same work at the same speed (bench/analysis.py), and numpy's import
alone cost a one-file ``djamms-edge analyze`` call 0.1 s (bench/cli_start.py). libavfilter comes with
PyAV, which the decoding needs anyway, and does its work without holding the GIL.

Both filters are causal: they smear energy *after* a stop (the box by a whole window, the high-pass by
~10 ms of ringing), never before an onset. So a head window, where the onset matters, is filtered
forwards (each sample's level is the window ending there), and a tail window, where the stop matters,
``backwards``: reversed, filtered, and its silences mapped back, so each level is the window *starting*
there and the trailing silence starts exactly where the last sound stops.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Iterator
from fractions import Fraction

import av
import av.filter

from djamms_edge.edge.media.analysis import ENERGY_WINDOW_SECONDS
from djamms_edge.edge.media.ffparse import Silence

# Samples handed to the graph per frame: few enough calls from Python, small enough to stay in cache.
FRAME_SAMPLES = 1 << 14
# afir's partition: the box is short (160 taps at 16 kHz); FFmpeg's default (8192) does several times the work.
_BOX_PARTITION = 256


def silences(
    samples: array[float],
    rate: float,
    *,
    threshold_db: float,
    min_silence_seconds: float,
    highpass_hz: float = 0.0,
    backwards: bool = False,
) -> list[Silence]:
    """Runs of at least ``min_silence_seconds`` whose 10 ms RMS level is under ``threshold_db`` (dBFS), in
    seconds from the first sample; a silence still going at the last sample has no end (None).

    ``samples``: mono float32 at full scale ±1 (``array('f')``)."""
    if samples.typecode != "f":
        raise TypeError(f"float32 samples expected (array('f')), not array({samples.typecode!r})")
    count = len(samples)
    # libavfilter counts whole samples a second; a thinned rate can be fractional (44056 Hz / 3): the graph
    # runs at the nearest one, and its answers are sample numbers, which we turn into time at the real rate.
    box = max(1, round(rate * ENERGY_WINDOW_SECONDS))
    runs = _silent_runs(_frames(samples, backwards), max(1, round(rate)), threshold_db, min_silence_seconds,
                        highpass_hz, box)  # fmt: skip
    if backwards:  # a run [a, b) of the reversed signal is [count - b, count - a) of the window
        runs = [(0 if end is None else count - end, None if start == 0 else count - start) for start, end in runs[::-1]]
    return [Silence(start / rate, None if end is None else end / rate) for start, end in runs]


def _frames(samples: array[float], backwards: bool) -> Iterator[array[float]]:
    """``samples`` FRAME_SAMPLES at a time, or reversed from the last one: a frame's copy at a time, never the
    whole window's (a tail widened to ten minutes is 38 MB at 16 kHz)."""
    if not backwards:
        for first in range(0, len(samples), FRAME_SAMPLES):
            yield samples[first : first + FRAME_SAMPLES]
        return
    for last in range(len(samples), 0, -FRAME_SAMPLES):
        frame = samples[max(0, last - FRAME_SAMPLES) : last]
        frame.reverse()
        yield frame


def _silent_runs(
    frames: Iterable[array[float]], rate: int, threshold_db: float, min_silence_seconds: float, highpass_hz: float,
    box: int,
) -> list[tuple[int, int | None]]:
    """silencedetect's runs over the graph's output, in samples: (first silent sample, first loud one or None)."""
    graph = av.filter.Graph()
    graph.threads = 1  # see decoder._to_mono
    time_base = Fraction(1, rate)
    source = graph.add_abuffer(sample_rate=rate, format="flt", layout="mono", time_base=time_base)
    taps = graph.add_abuffer(sample_rate=rate, format="flt", layout="mono", time_base=time_base)
    chain = [graph.add("highpass", f"f={highpass_hz!r}")] if highpass_hz > 0 else []
    split, square = graph.add("asplit"), graph.add("amultiply")
    mean = graph.add("afir", f"gtype=none:minp={_BOX_PARTITION}:maxp={_BOX_PARTITION}:precision=double")
    # silencedetect marks a frame with where a silence starts and ends (frame metadata: one start and one
    # end at most). Frames no longer than the shortest silence cannot hold two starts or two ends, and
    # one that holds both started a silence and ended it, in that order.
    framing = graph.add("asetnsamples", f"n={max(1, min(FRAME_SAMPLES, math.floor(min_silence_seconds * rate)))}:p=0")
    detect = graph.add("silencedetect", f"noise={10 ** (threshold_db / 10)!r}:d={min_silence_seconds!r}")
    sink = graph.add("abuffersink")
    for before, after in zip([source, *chain], [*chain, split], strict=True):
        before.link_to(after)
    split.link_to(square, 0, 0)
    split.link_to(square, 1, 1)
    square.link_to(mean, 0, 0)
    taps.link_to(mean, 0, 1)
    mean.link_to(framing)
    framing.link_to(detect)
    detect.link_to(sink)
    graph.configure()
    taps.push(_frame(array("f", [1 / box]) * box, 0, time_base))
    taps.push(None)

    runs: list[tuple[int, int | None]] = []

    def collect() -> None:
        while True:
            try:
                frame = sink.pull()
            except (av.BlockingIOError, av.EOFError):
                return
            marks = frame.metadata
            if "lavfi.silence_start" in marks:
                runs.append((_sample(marks["lavfi.silence_start"], rate), None))
            if "lavfi.silence_end" in marks:
                runs[-1] = (runs[-1][0], _sample(marks["lavfi.silence_end"], rate))

    pushed = 0
    for samples in frames:
        source.push(_frame(samples, pushed, time_base))
        pushed += len(samples)
        collect()
    source.push(None)
    collect()
    return runs


def _frame(samples: array[float], pts: int, time_base: Fraction) -> av.AudioFrame:
    frame = av.AudioFrame(format="flt", layout="mono", samples=len(samples))
    frame.planes[0].update(samples.tobytes())
    frame.sample_rate = time_base.denominator
    frame.pts, frame.time_base = pts, time_base
    return frame


def _sample(seconds: str, rate: int) -> int:
    """silencedetect's time (seconds, to the microsecond) as a sample number."""
    return math.floor(float(seconds) * rate + 0.5)
