"""Where a window of decoded audio is silent: its 10 ms RMS energy under a threshold. Pure (numpy, no I/O).

``decoder`` hands over a window as mono samples; ``silences()`` answers what ffmpeg's silencedetect
would on the window's short-window energy (the ``analysis`` rule takes it from there):

1. high-pass (``highpass``: the RBJ biquad ffmpeg's ``highpass`` filter uses, Q = 1/√2): rumble and
   DC are not sound. A DC offset is inaudible; a 10 ms RMS reading that counts one keeps seconds of
   "sound" nobody hears after some MP3s' last note (measured on real recordings, see bench/analysis.py);
2. square and average over ENERGY_WINDOW_SECONDS at every sample (a sliding box, not a 10 ms grid),
   so a hard stop or onset is found to the sample;
3. a run of at least ``min_silence_seconds`` under the threshold is a silence.

Both filters are causal: they smear energy *after* a stop (the box by a whole window, the high-pass by
~10 ms of ringing), never before an onset. So a head window, where the onset matters, is filtered
forwards (each sample's level is the window ending there), and a tail window, where the stop matters,
``backwards``: reversed, filtered, reversed back, so each level is the window *starting* there and the
trailing silence starts exactly where the last sound stops.
"""

from __future__ import annotations

import math

import numpy as np

from djamms_edge.edge.media.analysis import ENERGY_WINDOW_SECONDS
from djamms_edge.edge.media.ffparse import Silence

# The biquad runs as a complex one-pole recursion, blockwise (``_one_pole``): a block is as long as
# keeps the pole's inverse powers under this, so the sums stay exact to ~1e-11 of full scale.
_MAX_GROWTH = 1e4


def highpass(samples: np.ndarray, rate: float, hz: float) -> np.ndarray:
    """``samples`` through a 2nd-order high-pass at ``hz`` (RBJ cookbook, Q = 1/√2: ffmpeg's ``highpass``).

    numpy has no recursive filter, and one sample at a time in Python is far too slow, so the biquad
    is split exactly: its FIR part is three shifted products; its two poles p, p̄ make the recursive
    part the real part of ONE complex one-pole recursion w[n] = p·w[n-1] + u[n] (partial fractions),
    which ``_one_pole`` computes with cumulative sums."""
    w0 = 2 * math.pi * hz / rate
    alpha = math.sin(w0) / (2 * math.sqrt(0.5))
    cos_w0 = math.cos(w0)
    a0 = 1 + alpha
    b0, b1 = (1 + cos_w0) / 2 / a0, -(1 + cos_w0) / a0  # b2 == b0
    a1, a2 = -2 * cos_w0 / a0, (1 - alpha) / a0
    u = b0 * samples
    u[1:] += b1 * samples[:-1]
    u[2:] += b0 * samples[:-2]
    # 1 / (1 + a1 z⁻¹ + a2 z⁻²) = c / (1 - p z⁻¹) + c̄ / (1 - p̄ z⁻¹), with c = p / (p - p̄)
    pole = complex(-a1 / 2, math.sqrt(max(0.0, a2 - a1 * a1 / 4)))
    gain = pole / (pole - pole.conjugate())
    return 2 * (gain * _one_pole(u, pole)).real


def _one_pole(u: np.ndarray, pole: complex) -> np.ndarray:
    """w[n] = pole·w[n-1] + u[n] from w[-1] = 0, for |pole| < 1.

    In blocks of B samples: inside a block w[j] = pᵝ·(carry·p + Σ_{k≤j} p⁻ᵏ u[k]) (a cumulative sum),
    and each block's carry-in is the previous block's last value (a short loop over blocks)."""
    block = max(1, min(4096, int(math.log(_MAX_GROWTH) / -math.log(abs(pole)))))
    count = len(u)
    blocks = -(-count // block)
    padded = np.zeros(blocks * block)
    padded[:count] = u
    powers = pole ** np.arange(block)
    zero_state = np.cumsum(padded.reshape(blocks, block) / powers, axis=1) * powers
    carries = np.empty(blocks, dtype=complex)
    carry, step = 0j, pole**block
    for index, last in enumerate(zero_state[:, -1].tolist()):
        carries[index] = carry
        carry = last + step * carry
    return (zero_state + np.outer(carries, powers * pole)).reshape(-1)[:count]


def mean_square(samples: np.ndarray, size: int) -> np.ndarray:
    """Each sample's mean square over the ``size`` samples ending there (zeros before the first)."""
    sums = np.cumsum(np.concatenate((np.zeros(size), np.square(samples))))
    return np.maximum((sums[size:] - sums[:-size]) / size, 0.0)  # cumsum rounding may dip under 0


# The energy is computed this much at a time: ~100 bytes a sample while it runs, so a tail widened to
# ten minutes never needs a gigabyte. Each piece starts early enough (``_settling``) that its filters
# have forgotten their zero start by the piece's own first sample: the result is the same.
SEGMENT_SECONDS = 30.0


def silences(
    samples: np.ndarray,
    rate: float,
    *,
    threshold_db: float,
    min_silence_seconds: float,
    highpass_hz: float = 0.0,
    backwards: bool = False,
) -> list[Silence]:
    """Runs of at least ``min_silence_seconds`` whose 10 ms RMS level is under ``threshold_db`` (dBFS), in
    seconds from the first sample; a silence still going at the last sample has no end (None)."""
    signal = samples[::-1] if backwards else samples
    size = max(1, round(rate * ENERGY_WINDOW_SECONDS))
    segment = max(1, round(SEGMENT_SECONDS * rate))
    settling = round(_settling(highpass_hz) * rate)
    quiet = np.zeros(len(signal) + 2, dtype=bool)  # with a loud sample before and after: runs have both edges
    for first in range(0, len(signal), segment):
        lead = max(0, first - settling)
        piece = np.asarray(signal[lead : first + segment], dtype=np.float64)
        if highpass_hz > 0:
            piece = highpass(piece, rate, highpass_hz)
        energy = mean_square(piece, size)[first - lead :]
        quiet[1 + first : 1 + first + len(energy)] = energy < 10 ** (threshold_db / 10)
    if backwards:
        quiet = quiet[::-1]
    edges = np.flatnonzero(quiet[1:] != quiet[:-1])
    starts, ends = edges[0::2], edges[1::2]
    shortest = math.ceil(min_silence_seconds * rate - 1e-9)
    return [
        Silence(start / rate, None if end == len(signal) else end / rate)
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True)
        if end - start >= shortest
    ]


def _settling(highpass_hz: float) -> float:
    """Seconds after which the filters' zero start no longer shows: the box's window, and the high-pass's
    ringing decayed under 1e-12 (28 time constants of its poles, τ = √2 / (2π f))."""
    return ENERGY_WINDOW_SECONDS + (28 * math.sqrt(2) / (2 * math.pi * highpass_hz) if highpass_hz > 0 else 0.0)
