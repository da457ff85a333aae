"""Pure parsers for what ffmpeg and ffprobe print (unit tests feed them recorded text)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUMBER = r"(-?[\d.]+(?:e-?\d+)?)"
_SILENCE = r"\[silencedetect @ [^\]]*\] silence_{edge}: " + _NUMBER
_INTEGRATED = re.compile(r"Integrated loudness:\s*\n\s*I:\s*(-?[\d.]+) LUFS")
_OUT_TIME_US = re.compile(r"^out_time_us=(-?\d+)\s*$", re.MULTILINE)
# ebur128 reports -70 LUFS (its absolute gate) when nothing was loud enough to measure.
LOUDNESS_FLOOR_LUFS = -70.0


@dataclass(frozen=True, slots=True)
class Silence:
    """A run of silence in window time; ``end`` is None if it lasted to the end of the input."""

    start: float
    end: float | None


def parse_silences(stderr: str) -> list[Silence]:
    """silencedetect's start/end lines, paired in order (ffmpeg ≥ 5 also closes a silence at EOF)."""
    events: list[tuple[int, str, float]] = []
    for kind in ("start", "end"):
        pattern = re.compile(_SILENCE.format(edge=kind))
        events += [(m.start(), kind, max(0.0, float(m.group(1)))) for m in pattern.finditer(stderr)]
    silences: list[Silence] = []
    open_start: float | None = None
    for _, kind, value in sorted(events):
        if kind == "start":
            if open_start is not None:  # a start without its end: keep the earlier, it is still silent
                continue
            open_start = value
        elif open_start is not None:
            silences.append(Silence(open_start, value))
            open_start = None
    if open_start is not None:
        silences.append(Silence(open_start, None))
    return silences


def parse_decoded_until(progress: str) -> float | None:
    """How far decoding got (seconds of output), from ``-progress`` key=value lines."""
    values = [int(v) for v in _OUT_TIME_US.findall(progress)]
    if not values:
        return None
    return max(0, values[-1]) / 1_000_000


def parse_integrated_loudness(stderr: str) -> float | None:
    """ebur128's integrated loudness in LUFS; None when the input was too quiet to measure."""
    matches = _INTEGRATED.findall(stderr)
    if not matches:
        return None
    value = float(matches[-1])
    return None if value <= LOUDNESS_FLOOR_LUFS + 0.05 else value


_NOISE = re.compile(r"^\s*(Last message repeated|Input #|Output #|Stream #|Metadata:|Duration:|\s)")


def summarize_error(stderr: str) -> str:
    """The last meaningful line an ffmpeg tool printed, without its ``[demuxer @ 0x…]`` prefix."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not _NOISE.match(line)]
    if not lines:
        return "not a readable media file"
    if any("matches no streams" in line for line in lines):
        return "has no audio stream"
    last = re.sub(r"^\[[^\]]+\]\s*", "", lines[-1])
    last = re.sub(r"^file:\S*: ", "", last)
    if "Invalid data found when processing input" in last:
        earlier = [re.sub(r"^\[[^\]]+\]\s*", "", line) for line in lines[:-1]]
        detail = f" ({earlier[-1]})" if earlier else ""
        return f"not a readable media file{detail}"
    return last
