"""Generated tracks whose silences are known exactly (tests, benchmarks, the demo).

A track is a list of segments, each a level (peak amplitude, 0 = digital silence)
optionally ramping linearly to another level. ffmpeg renders it from an
``aevalsrc`` expression, so nothing is downloaded or checked in, and the truth
(where sound starts and stops) is stated by the segments themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from djamms_edge.edge.media import ffmpeg

Format = Literal["m4a", "webm", "mp4", "flac"]
_LIMIT_SECONDS = 600.0
# Two partials a fifth apart (weights sum to 1): a tone with some movement, peak = the segment level.
_VOICE = "(0.6*sin(2*PI*220*t)+0.4*sin(2*PI*330*t))"
_VIDEO = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
_AAC = ["-c:a", "aac", "-aac_coder", "fast", "-b:a", "128k"]
_ENCODE: dict[Format, list[str]] = {
    "m4a": _AAC,
    "webm": ["-c:a", "libopus", "-b:a", "96k"],
    "mp4": [*_VIDEO, *_AAC],
    "flac": ["-c:a", "flac"],
}


@dataclass(frozen=True, slots=True)
class Segment:
    seconds: float
    level: float = 0.5  # peak amplitude at the segment's start (0 = digital silence)
    ramp_to: float | None = None  # linear ramp to this level by the segment's end (a fade)


def silence(seconds: float) -> Segment:
    return Segment(seconds, 0.0)


def tone(seconds: float, level: float = 0.5) -> Segment:
    return Segment(seconds, level)


def fade(seconds: float, start_level: float = 0.5, end_level: float = 0.0) -> Segment:
    return Segment(seconds, start_level, end_level)


@dataclass(frozen=True, slots=True)
class SynthTrack:
    segments: tuple[Segment, ...]

    @property
    def duration(self) -> float:
        return sum(s.seconds for s in self.segments)

    def boundaries(self) -> list[float]:
        """Start time of each segment, then the end of the track."""
        times = [0.0]
        for segment in self.segments:
            times.append(times[-1] + segment.seconds)
        return times

    def expression(self) -> str:
        """The amplitude envelope times the voice, as an ffmpeg expression of ``t``."""
        terms = []
        times = self.boundaries()
        for segment, start, end in zip(self.segments, times, times[1:], strict=False):
            if segment.level == 0 and not segment.ramp_to:
                continue
            if segment.ramp_to is None:
                level = f"{segment.level}"
            else:
                slope = (segment.ramp_to - segment.level) / segment.seconds
                level = f"({segment.level}+({slope})*(t-{start}))"
            terms.append(f"gte(t,{start})*lt(t,{end})*{level}")
        envelope = "+".join(terms) or "0"
        return f"({envelope})*{_VOICE}"


async def render(
    track: SynthTrack,
    directory: Path,
    name: str,
    formats: tuple[Format, ...],
    *,
    channels: int = 1,
    sample_rate: int = 48000,
    video_size: str = "160x90",
) -> dict[Format, Path]:
    """Encode ``track`` as ``directory/name.<format>`` for each format (``mp4`` adds H.264 video).

    The expression is evaluated once into a lossless master that every format is encoded from;
    an ``mp4`` made beside an ``m4a`` copies its AAC stream instead of encoding it again."""
    master = directory / f"{name}.master.wav"
    source = f"aevalsrc=exprs='{track.expression()}':s={sample_rate}:d={track.duration}"
    await ffmpeg.render(master, ["-c:a", "pcm_f32le"], lavfi=[source], limit_seconds=_LIMIT_SECONDS)
    out: dict[Format, Path] = {}
    for fmt in sorted(formats, key=lambda f: f == "mp4"):  # mp4 last: it may reuse the m4a
        out[fmt] = directory / f"{name}.{fmt}"
        video = [f"testsrc2=s={video_size}:r=25:d={track.duration}"] if fmt == "mp4" else []
        mapping = ["-map", "1:v", "-map", "0:a"] if video else ["-map", "0:a"]
        audio_from, encode = master, [*mapping, "-ac", str(channels), *_ENCODE[fmt]]
        if fmt == "mp4" and "m4a" in out:
            audio_from, encode = out["m4a"], [*mapping, *_VIDEO, "-c:a", "copy"]
        await ffmpeg.render(out[fmt], encode, files=[audio_from], lavfi=video, limit_seconds=_LIMIT_SECONDS)
    master.unlink()
    return out
