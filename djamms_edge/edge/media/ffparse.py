"""Pure parsers for what ffmpeg and ffprobe print (unit tests feed them recorded text)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUMBER = r"(-?[\d.]+(?:e-?\d+)?)"
# silencedetect logs "[silencedetect @ 0x…] silence_start: 1.5" whatever its instance is named, so
# several windows in one run each print its frame metadata through "ametadata@NAME=mode=print".
_SILENCE = r"\[silencedetect @ [^\]]*\] silence_{edge}: " + _NUMBER
_NAMED_SILENCE = r"\[ametadata@{name} @ [^\]]*\] lavfi\.silence_{edge}=" + _NUMBER
_PEAK = r"^\[astats@{name} @ [^\]]*\] Peak level dB: (-?[\d.]+|-inf)\s*$"
_SAMPLES = re.compile(r"^\[astats@(\w+) @ [^\]]*\] Number of samples: (\d+)\s*$", re.MULTILINE)
_INTEGRATED = re.compile(r"Integrated loudness:\s*\n\s*I:\s*(-?[\d.]+) LUFS")
_OUT_TIME_US = re.compile(r"^out_time_us=(-?\d+)\s*$", re.MULTILINE)
_DURATION = re.compile(r"^\s*Duration: (N/A|(\d+):(\d\d):(\d\d(?:\.\d+)?))", re.MULTILINE)
# ebur128 reports -70 LUFS (its absolute gate) when nothing was loud enough to measure.
LOUDNESS_FLOOR_LUFS = -70.0


@dataclass(frozen=True, slots=True)
class Silence:
    """A run of silence in window time; ``end`` is None if it lasted to the end of the input."""

    start: float
    end: float | None


def parse_silences(stderr: str, name: str | None = None) -> list[Silence]:
    """silencedetect's start/end lines, paired in order (ffmpeg ≥ 5 also closes a silence at EOF); with
    ``name``, those printed by ``ametadata@NAME`` (which sees no close at EOF: the silence stays open)."""
    events: list[tuple[int, str, float]] = []
    for kind in ("start", "end"):
        template = _SILENCE if name is None else _NAMED_SILENCE
        pattern = re.compile(template.format(name=re.escape(name or ""), edge=kind))
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


def parse_sample_counts(stderr: str) -> dict[str, int]:
    """How many samples each ``astats@NAME`` instance saw (its summary when the run ends), by NAME."""
    return {m.group(1): int(m.group(2)) for m in _SAMPLES.finditer(stderr)}


def parse_peak_level(stderr: str, name: str) -> float | None:
    """The overall peak level (dBFS) that ``astats@NAME`` printed; None if it printed none."""
    matches = re.findall(_PEAK.format(name=re.escape(name)), stderr, re.MULTILINE)
    return float(matches[-1]) if matches else None


def parse_input_duration(stderr: str) -> float | None:
    """The first input's container duration from ffmpeg's header (centisecond precision); None if unknown."""
    match = _DURATION.search(stderr)
    if match is None or match.group(1) == "N/A":
        return None
    hours, minutes, seconds = match.group(2, 3, 4)
    value = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return value if value > 0 else None


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
