"""``analyze()``: a track's realStartOffset, realEndOffset, duration (and loudness), used by the CLI and the daemon.

Fast mode decodes the audio stream only, and only a head window and a tail window, both
in ONE ffmpeg process (the file opened twice as two inputs: one start-up, which costs as
much as decoding several seconds). Both seek on input (``-t`` from the start, ``-sseof``
from the end), so nothing in between is read or decoded, and the tail needs no separate
probe for the duration. The windows are short: a tail silent throughout is widened and
a silent head lengthened (see ``analysis``), which is rare, so the usual track costs one
short run. Inside the filter graph the audio becomes its 10 ms RMS energy (see
``_energy_graph``) and silencedetect reads that. Full mode (idle nights) first decodes
everything once to measure EBU R128 integrated loudness, then runs the same windows with
a threshold relative to that loudness.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from djamms_edge.edge.media import ffmpeg
from djamms_edge.edge.media.analysis import (
    ENERGY_WINDOW_SECONDS,
    Window,
    decide,
    silence_threshold_db,
    to_track_time,
    wider_head_length,
    wider_tail_start,
)
from djamms_edge.edge.media.config import AnalysisConfig
from djamms_edge.edge.media.ffmpeg import MediaError, MediaInput, Seek, media_input
from djamms_edge.edge.media.ffparse import (
    parse_decoded_until,
    parse_input_duration,
    parse_integrated_loudness,
    parse_peak_level,
    parse_sample_counts,
    parse_silences,
)

log = logging.getLogger(__name__)

# A window that decodes less than this found no audio where the container promised some.
_EMPTY_WINDOW_SECONDS = 0.05
# Audio ending this much before the container's duration is a cut-off file. (A video a little
# longer than its sound is normal: the cue-out then lands where the sound ends.)
_MISSING_AUDIO_SECONDS = 5.0
_MISSING_AUDIO_FRACTION = 0.1
# Partition size of the box FIR's convolution: small, because the box is short (160 taps at 16 kHz);
# ffmpeg's default (8192) does several times the work here.
_FIR_PARTITION = 256
_BOX = f"afir=gtype=none:minp={_FIR_PARTITION}:maxp={_FIR_PARTITION}"
# afir's gain on a box of taps 1/N should be 0 dB; FFmpeg 5.1 doubles it (+6.02 dB, its FFT scaling).
# Rather than trust one version, the first analysis in a process measures it in the same ffmpeg run
# (an impulse through the box) while its windows are read at each of these candidate gains; an FFmpeg
# whose gain is neither is read again at the measured one.
_GAIN_CANDIDATES_DB = (20 * math.log10(2), 0.0)
_box_gain_db: float | None = None


@dataclass(frozen=True, slots=True)
class TrackAnalysis:
    real_start_offset: float
    real_end_offset: float
    duration: float
    loudness_lufs: float | None
    method: str  # "head+tail", "whole" (the tail window covered the track) or "full" (loudness measured)
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The reference's field names, so hub and catalog speak one language."""
        return {
            "realStartOffset": self.real_start_offset,
            "realEndOffset": self.real_end_offset,
            "duration": self.duration,
            "loudnessLufs": self.loudness_lufs,
            "method": self.method,
            "notes": list(self.notes),
        }


async def analyze(
    path_or_url: str | Path,
    config: AnalysisConfig,
    *,
    full: bool = False,
    loudness_lufs: float | None = None,
    low_priority: bool = False,
) -> TrackAnalysis:
    """Analyse a local file or http(s) URL. ``loudness_lufs`` (known from an earlier full pass) sets the
    threshold without measuring again; ``low_priority`` runs ffmpeg at nice 19 (idle-night work while
    something plays). Cancelling stops ffmpeg. Raises MediaError for anything that is not playable audio."""
    inp = media_input(path_or_url)
    if full:
        loudness_lufs = await measure_loudness(inp, config, low_priority=low_priority)
    threshold_db = silence_threshold_db(config, loudness_lufs)

    async def windows(**seeks: Seek) -> tuple[dict[str, Window], float | None]:
        return await _windows(inp, seeks, config, threshold_db, low_priority=low_priority)

    found, duration = await windows(head=Seek(length=config.head_seconds), tail=Seek(last=config.tail_seconds))
    head, tail = found["head"], found["tail"]
    if tail.end - tail.start < _EMPTY_WINDOW_SECONDS:
        where = f" after {tail.start:.1f}s" if tail.start > 0 else ""
        raise MediaError(f"{inp.name}: truncated or corrupt: no audio could be decoded{where}")
    if duration is None:
        duration = tail.end
    elif tail.end < duration - max(_MISSING_AUDIO_SECONDS, _MISSING_AUDIO_FRACTION * duration):
        raise MediaError(f"{inp.name}: truncated or corrupt: audio stops at {tail.end:.1f}s of {duration:.1f}s")
    while (length := wider_head_length(duration, head, config)) is not None:
        log.debug("%s: head is silent up to %.1fs; lengthening to %.1fs", inp.name, head.end, length)
        head = (await windows(head=Seek(length=length)))[0]["head"]
    while (start := wider_tail_start(duration, tail)) is not None:
        log.debug("%s: tail from %.1fs is silent; widening to %.1fs", inp.name, tail.start, start)
        tail = (await windows(tail=Seek(start=start)))[0]["tail"]
    cues = decide(duration, head, tail, config)
    return TrackAnalysis(
        real_start_offset=cues.real_start,
        real_end_offset=cues.real_end,
        duration=round(duration, 3),
        loudness_lufs=loudness_lufs,
        method="full" if full else ("whole" if tail.start <= 0 else "head+tail"),
        notes=cues.notes,
    )


async def measure_loudness(inp: MediaInput, config: AnalysisConfig, *, low_priority: bool = False) -> float | None:
    """Integrated loudness (EBU R128) over the whole audio stream; None if it is (nearly) silent."""
    result = await ffmpeg.filter_audio(
        inp, "ebur128=framelog=verbose", limit_seconds=config.timeout_seconds, low_priority=low_priority
    )
    if (parse_decoded_until(result.stdout) or 0.0) < _EMPTY_WINDOW_SECONDS:
        raise MediaError(f"{inp.name}: no audio could be decoded")
    return parse_integrated_loudness(result.stderr)


def _calibration_graph(config: AnalysisConfig, output: int) -> str:
    """An impulse through the box, its peak counted by ``astats@calibration``: N taps of gain/N."""
    rate = config.sample_rate
    return (
        f"aevalsrc=eq(n\\,0):s={rate}:d=0.05[impulse];{_box_source(config)}[calibration_box];"
        f"[impulse][calibration_box]{_BOX},astats@calibration=measure_perchannel=none:measure_overall=Peak_level"
        f"[w{output}]"
    )


def _box_source(config: AnalysisConfig) -> str:
    """A box of ENERGY_WINDOW_SECONDS: N taps of 1/N (a mean), as an audio source for afir."""
    taps = round(config.sample_rate * ENERGY_WINDOW_SECONDS)
    return f"aevalsrc={1 / taps!r}:s={config.sample_rate}:d={taps / config.sample_rate!r}"


def _energy_graph(
    index: int, name: str, config: AnalysisConfig, threshold_db: float, gains_db: Sequence[float]
) -> str:
    """The filter graph of window ``index``: where its short-window RMS energy is under ``threshold_db``.

    Downmix to mono and resample; count the samples (``astats@NAME``: how long the window really is);
    high-pass (rumble and DC are not sound); square; average over ENERGY_WINDOW_SECONDS (a box FIR whose
    taps are 1/N); silencedetect then finds where that mean square stays under the threshold, which in
    its amplitude terms is twice the dB value (mean square = RMS²) plus the box's gain, and
    ``ametadata@NAMEk`` prints what it found under the window's name (k: which of ``gains_db``; while the
    gain is not known yet, one silencedetect per candidate, each one's marks deleted before the next).

    Both the high-pass and the box are causal: they smear energy *after* a stop (the box by a whole
    window, the high-pass by ~10 ms of ringing), never before an onset. So the head window, where the
    onset matters, is filtered forwards: each sample's level is the window ending there. The tail
    window, where the stop matters, is filtered backwards (``areverse`` around both; the second one
    also restores the frames' timestamps), so each sample's level is the window *starting* there, and
    the trailing silence starts exactly where the last sound stops. A reversed window is held in
    memory while it is filtered: ~64 KB per second at 16 kHz (the default 15 s tail: 1 MB)."""
    rate = config.sample_rate
    backwards = name == "tail"
    chain = [
        f"aformat=sample_fmts=flt:channel_layouts=mono,aresample={rate}",
        f"astats@{name}=measure_perchannel=none:measure_overall=Number_of_samples",
    ]
    if backwards:
        chain.append("areverse")
    if config.highpass_hz > 0:
        chain.append(f"highpass=f={config.highpass_hz:g}")
    chain.append("asplit")
    i = index
    detect = ",ametadata=mode=delete,".join(
        f"silencedetect=noise={2 * threshold_db + gain_db:.2f}dB:d={config.min_silence_seconds:g},"
        f"ametadata@{name}{k}=mode=print"
        for k, gain_db in enumerate(gains_db)
    )
    return ";".join(
        [
            f"{_box_source(config)}[box{i}]",
            f"[{i}:a:0]{','.join(chain)}[x{i}][y{i}]",
            f"[x{i}][y{i}]amultiply[sq{i}]",
            f"[sq{i}][box{i}]{_BOX}{',areverse' if backwards else ''},{detect}[w{i}]",
        ]
    )


async def _windows(
    inp: MediaInput,
    seeks: dict[str, Seek],
    config: AnalysisConfig,
    threshold_db: float,
    *,
    low_priority: bool,
) -> tuple[dict[str, Window], float | None]:
    """Decode the windows (``head`` and/or ``tail``) in one ffmpeg run; returns each in track time, and
    the container's duration."""
    global _box_gain_db
    calibrating = _box_gain_db is None
    gains = _GAIN_CANDIDATES_DB if _box_gain_db is None else (_box_gain_db,)
    names = list(seeks)
    graph = ";".join(_energy_graph(i, name, config, threshold_db, gains) for i, name in enumerate(names))
    if calibrating:
        graph += ";" + _calibration_graph(config, len(names))
    result = await ffmpeg.filter_windows(
        inp,
        [seeks[name] for name in names],
        graph,
        extra_outputs=int(calibrating),
        limit_seconds=config.timeout_seconds,
        low_priority=low_priority,
    )
    choice = 0
    if calibrating:
        peak_db = parse_peak_level(result.stderr, "calibration")
        if peak_db is None:
            raise MediaError("ffmpeg's afir filter printed no level: cannot calibrate the analysis")
        _box_gain_db = peak_db + 20 * math.log10(round(config.sample_rate * ENERGY_WINDOW_SECONDS))
        near = [k for k, gain in enumerate(gains) if abs(gain - _box_gain_db) < 0.05]
        if not near:
            log.info("ffmpeg's afir gain is %.2f dB (not a known one): reading the windows again", _box_gain_db)
            return await _windows(inp, seeks, config, threshold_db, low_priority=low_priority)
        choice = near[0]
    duration = parse_input_duration(result.stderr)
    samples = parse_sample_counts(result.stderr)
    windows: dict[str, Window] = {}
    for name, seek in seeks.items():
        offset = seek.start or 0.0
        if seek.last is not None:
            # -sseof starts `last` seconds before the container's end (at 0 for a shorter file).
            offset = max(0.0, duration - seek.last) if duration is not None else 0.0
        decoded = samples.get(name, 0) / config.sample_rate
        silences = to_track_time(parse_silences(result.stderr, f"{name}{choice}"), offset)
        windows[name] = Window(offset, offset + decoded, silences)
    return windows, duration
