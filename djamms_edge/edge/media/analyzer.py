"""``analyze()``: a track's realStartOffset, realEndOffset, duration (and loudness), used by the daemon and the
CLI (``analyze_blocking()``: the same work in the calling thread, for a local file in a one-shot program).

Fast mode decodes the audio stream only, and only a head window and a tail window, in this process
(``decoder``: FFmpeg's libraries through PyAV, opened once, the tail reached by seeking, so nothing in
between is read or decoded and no ffmpeg process is started). Each window becomes its 10 ms RMS energy
and its silences (``energy``, pure), and the ``analysis`` rule decides. The windows are short: a tail
silent throughout is widened and a silent head lengthened (see ``analysis``), which is rare, so the usual
track costs one short decode. Full mode (idle nights) first decodes everything once in an ffmpeg
process to measure EBU R128 integrated loudness, then reads the same windows with a threshold relative
to that loudness.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from djamms_edge.edge.media import decoder, energy, ffmpeg
from djamms_edge.edge.media.analysis import (
    TrackAnalysis,
    Window,
    decide,
    silence_threshold_db,
    to_track_time,
    wider_head_length,
    wider_tail_start,
)
from djamms_edge.edge.media.config import AnalysisConfig
from djamms_edge.edge.media.ffmpeg import MediaError, MediaInput, Seek, media_input
from djamms_edge.edge.media.ffparse import parse_decoded_until, parse_integrated_loudness

log = logging.getLogger(__name__)

# A window that decodes less than this found no audio where the container promised some.
_EMPTY_WINDOW_SECONDS = 0.05
# Audio ending this much before the container's duration is a cut-off file. (A video a little
# longer than its sound is normal: the cue-out then lands where the sound ends.)
_MISSING_AUDIO_SECONDS = 5.0
_MISSING_AUDIO_FRACTION = 0.1


async def analyze(
    path_or_url: str | Path,
    config: AnalysisConfig,
    *,
    full: bool = False,
    loudness_lufs: float | None = None,
    low_priority: bool = False,
) -> TrackAnalysis:
    """Analyse a local file or http(s) URL. ``loudness_lufs`` (known from an earlier full pass) sets the
    threshold without measuring again; ``low_priority`` runs the work at nice 19 (idle-night work while
    something plays). The decoding runs in a worker thread (``decoder.run``, ``analyze_blocking``'s work);
    cancelling stops it. Raises MediaError for anything that is not playable audio."""
    inp = media_input(path_or_url)
    if full:
        loudness_lufs = await measure_loudness(inp, config, low_priority=low_priority)

    def job(stop: decoder.Stop) -> TrackAnalysis:
        return _analyze(inp, config, stop, loudness_lufs=loudness_lufs, full=full)

    return await decoder.run(job, what=inp.name, limit_seconds=config.timeout_seconds, low_priority=low_priority)


def analyze_blocking(path_or_url: str | Path, config: AnalysisConfig) -> TrackAnalysis:
    """``analyze`` of a local file in the calling thread, for a one-shot program (``djamms-edge analyze``):
    no event loop and no worker thread, so it needs neither asyncio nor threads' imports (~0.045 s of
    a one-file call's start-up; bench/cli_start.py). The same work and the same limit, checked between
    packets: fine for a file, whose reads do not stall; a URL, whose can, goes through ``analyze``."""
    inp = media_input(path_or_url)
    return _analyze(inp, config, decoder.Stop(inp.name, config.timeout_seconds))


def _analyze(
    inp: MediaInput, config: AnalysisConfig, stop: decoder.Stop, *, loudness_lufs: float | None = None,
    full: bool = False,
) -> TrackAnalysis:
    """The analysis itself (blocking): head and tail, widened while silent, then the rule."""
    threshold_db = silence_threshold_db(config, loudness_lufs)

    def windows(**seeks: Seek) -> tuple[dict[str, Window], float | None]:
        return _windows(inp, seeks, config, threshold_db, stop)

    found, duration = windows(head=Seek(length=config.head_seconds), tail=Seek(last=config.tail_seconds))
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
        head = windows(head=Seek(length=length))[0]["head"]
    while (start := wider_tail_start(duration, tail)) is not None:
        log.debug("%s: tail from %.1fs is silent; widening to %.1fs", inp.name, tail.start, start)
        tail = windows(tail=Seek(start=start))[0]["tail"]
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


def _windows(
    inp: MediaInput, seeks: dict[str, Seek], config: AnalysisConfig, threshold_db: float, stop: decoder.Stop
) -> tuple[dict[str, Window], float | None]:
    """Decode the windows (``head`` and/or ``tail``) and find their silences; returns each in track time,
    and the container's duration."""
    decoded, duration = decoder.read_windows(inp, seeks, stop, max_rate=config.sample_rate)
    windows = {}
    for name, pcm in decoded.items():
        stop.check()
        silences = energy.silences(
            pcm.samples,
            pcm.rate,
            threshold_db=threshold_db,
            min_silence_seconds=config.min_silence_seconds,
            highpass_hz=config.highpass_hz,
            backwards=name == "tail",  # see energy: the stop is exact when the tail is filtered backwards
        )
        windows[name] = Window(pcm.start, pcm.end, to_track_time(silences, pcm.start))
    return windows, duration


def analysis_job(request: dict[str, Any]) -> dict[str, Any]:
    """``analyze`` as a media worker's job (``worker.analyze`` is the daemon's side). Imports here: asyncio
    would slow the one-file CLI (``analyze_blocking``) down."""
    import asyncio

    from djamms_edge.edge.media.worker import config_from_json

    config = config_from_json(AnalysisConfig, request["config"])
    work = analyze(request["path"], config, full=bool(request["full"]), loudness_lufs=request["loudness_lufs"],
                   low_priority=bool(request["low_priority"]))
    try:
        return {"ok": asyncio.run(work).to_json()}
    except MediaError as exc:
        return {"error": "media", "message": str(exc)}
