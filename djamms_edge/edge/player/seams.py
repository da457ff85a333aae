"""What a listener hears at transitions, measured on a capture of the player's output.

mpv's ``ao=pcm`` writes exactly what would have gone to the sound card into a WAV file;
tests and ``bench/transitions.py`` play generated tones (one frequency per track) through
the real engine and read that file back here. Pure Python on purpose (``wave`` cannot
read mpv's WAVE_FORMAT_EXTENSIBLE header nor float samples, and numpy is not a dependency): a few seconds
of audio per track is small enough.
"""

from __future__ import annotations

import array
import itertools
import struct
from dataclasses import dataclass
from pathlib import Path

from djamms_edge.edge.media import ffmpeg

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
# A run of near-zero samples shorter than this is a sine crossing zero, not silence.
_MIN_SILENT_RUN_SECONDS = 0.0005


@dataclass(frozen=True, slots=True)
class Capture:
    rate: int
    samples: array.array[float]  # first channel, floats in -1..1

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate


@dataclass(frozen=True, slots=True)
class Tone:
    hz: float
    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Seam:
    before_hz: float
    after_hz: float
    silence_ms: float


async def render_tone(dest: Path, hz: float, *, lead: float, tone: float, trail: float) -> Path:
    """An AAC track: ``lead`` s of digital silence, a ``hz`` sine for ``tone`` s, ``trail`` s of silence."""
    body = f"gte(t,{lead})*lt(t,{lead + tone})*0.5*sin(2*PI*{hz}*t)"
    source = f"aevalsrc=exprs='{body}|{body}':s=48000:d={lead + tone + trail}"
    await ffmpeg.render(dest, ["-c:a", "aac", "-b:a", "128k"], lavfi=[source], limit_seconds=120)
    return dest


def read_wav(path: Path) -> Capture:
    """The first channel of a WAV in any sample format mpv's ao=pcm writes (8/16/24/32-bit integer,
    32/64-bit float; plain or WAVE_FORMAT_EXTENSIBLE), header sizes ignored (mpv may be killed)."""
    data = path.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a WAV file")
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk == b"fmt ":
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, pos + 8)
            if tag == _EXTENSIBLE:
                tag = struct.unpack_from("<H", data, pos + 8 + 24)[0]  # the sub-format GUID starts with the tag
            fmt = (tag, channels, rate, bits)
        elif chunk == b"data":
            if fmt is None:
                raise ValueError(f"{path}: data before fmt")
            return _decode(data[pos + 8 :], *fmt)
        pos += 8 + size + (size & 1)
    raise ValueError(f"{path}: no audio data")


# (format tag, bits per sample): array typecode, the value of full scale, the value of silence
_SAMPLE_FORMATS: dict[tuple[int, int], tuple[str, float, float]] = {
    (_PCM, 8): ("B", 128.0, 128.0),  # WAV's 8-bit samples are unsigned
    (_PCM, 16): ("h", 32768.0, 0.0),
    (_PCM, 32): ("i", 2147483648.0, 0.0),
    (_FLOAT, 32): ("f", 1.0, 0.0),
    (_FLOAT, 64): ("d", 1.0, 0.0),
}


def _decode(body: bytes, tag: int, channels: int, rate: int, bits: int) -> Capture:
    if (tag, bits) == (_PCM, 24):  # no array type is 3 bytes wide: widen each first-channel sample
        width = 3 * channels
        starts = range(0, len(body) - width + 1, width)
        firsts = (int.from_bytes(body[i : i + 3], "little", signed=True) for i in starts)
        return Capture(rate, array.array("f", (x / 8388608.0 for x in firsts)))
    if (tag, bits) not in _SAMPLE_FORMATS:
        raise ValueError(f"unsupported WAV sample format {tag}/{bits} bits")
    typecode, scale, zero = _SAMPLE_FORMATS[(tag, bits)]
    raw = array.array(typecode)
    width = raw.itemsize * channels
    raw.frombytes(body[: len(body) // width * width])
    return Capture(rate, array.array("f", ((x - zero) / scale for x in raw[::channels])))


def silent_runs(capture: Capture, threshold: float = 1e-3) -> list[tuple[float, float]]:
    """(start, end) seconds of every stretch where all samples are quieter than ``threshold``."""
    runs: list[tuple[float, float]] = []
    rate, start = capture.rate, None
    for index, sample in enumerate(capture.samples):
        if -threshold < sample < threshold:
            if start is None:
                start = index
        elif start is not None:
            runs.append((start, index))
            start = None
    if start is not None:
        runs.append((start, len(capture.samples)))
    minimum = _MIN_SILENT_RUN_SECONDS * rate
    return [(a / rate, b / rate) for a, b in runs if b - a >= minimum]


def tones(capture: Capture, threshold: float = 1e-3, min_seconds: float = 0.01) -> list[Tone]:
    """Stretches of one steady frequency, in order, to about half a period.

    Each half-period (between two zero crossings) gives a frequency; consecutive half-periods
    within 15 % of each other form one tone, and silence ends it. The half-period straddling a
    change of track has a length of its own and is dropped with anything shorter than ``min_seconds``.
    """
    rate, samples = capture.rate, capture.samples
    silences = [(round(a * rate), round(b * rate)) for a, b in silent_runs(capture, threshold)]
    found: list[list[float]] = []  # [start sample, end sample, half-periods]
    previous, silence = None, 0
    for index in range(1, len(samples)):
        if (samples[index - 1] < 0) == (samples[index] < 0):
            continue
        if previous is not None:
            while silence < len(silences) and silences[silence][1] <= previous:
                silence += 1
            quiet = silence < len(silences) and silences[silence][0] < index
            if not quiet:
                hz = rate / (2 * (index - previous))
                last = found[-1] if found else None
                if last is not None and last[1] == previous and abs(hz - _hz(last, rate)) <= 0.15 * _hz(last, rate):
                    last[1], last[2] = index, last[2] + 1
                else:
                    found.append([previous, index, 1])
        previous = index
    merged: list[list[float]] = []
    for segment in (f for f in found if (f[1] - f[0]) / rate >= min_seconds):
        last = merged[-1] if merged else None
        close = last is not None and (segment[0] - last[1]) / rate < 0.005
        if last is not None and close and abs(_hz(segment, rate) - _hz(last, rate)) <= 0.15 * _hz(last, rate):
            last[1], last[2] = segment[1], last[2] + segment[2] + 1
        else:
            merged.append(segment)
    return [Tone(round(_hz(m, rate), 1), m[0] / rate, m[1] / rate) for m in merged]


def _hz(segment: list[float], rate: int) -> float:
    return segment[2] * rate / (2 * (segment[1] - segment[0]))


def seams(capture: Capture, threshold: float = 1e-3) -> list[Seam]:
    """Between each pair of consecutive tones, the longest silence a listener would hear, in ms."""
    found = tones(capture, threshold=threshold)
    runs = silent_runs(capture, threshold)
    result = []
    for before, after in itertools.pairwise(found):
        margin = 0.03  # the tones' edges are known to a window; look a little either side
        inside = [min(b, after.start + margin) - max(a, before.end - margin) for a, b in runs
                  if b > before.end - margin and a < after.start + margin]
        result.append(Seam(before.hz, after.hz, round(max(inside, default=0.0) * 1000, 2)))
    return result
