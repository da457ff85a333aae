"""Where a track's audible part starts and ends, decided from silences found in two windows.

Pure: no I/O. ``analyzer`` decodes a head window and a tail window (``decoder``), and ``energy`` finds
where their short-window energy (the RMS over ENERGY_WINDOW_SECONDS) stays under the threshold; the
silences come here, in window time; we map them to track time and apply the rules:

* sound is energy, not peaks: a stretch is silent when its 10 ms RMS level is under the threshold.
  A single sample over -60 dBFS (dither, a hiss whose peaks cross it at -68 dBFS RMS, a reverb
  tail nobody hears) does not make a window loud; a quiet intro or a quiet hidden ending, whose
  10 ms RMS is over the threshold, does, and is kept;
* the threshold (``silence_threshold_db``): -60 dBFS RMS (the level sox's ``silence`` and
  Liquidsoap's ``blank.detect`` work at); when the integrated loudness is known it is lowered to sit
  ``relative_threshold_lu`` under it (Liquidsoap's autocue idea), because the player will raise a
  quiet track and its tail with it, but never under the absolute floor ``silence_floor_db``, where
  a raised noise floor would start to count as music;
* only a silence that touches the start (cue-in) or the end (cue-out) counts; silence in the
  middle of a track (a break, a hidden track after a pause) is music, not a boundary;
* a cue-in later than max(``max_cue_in_seconds``, ``max_cue_in_fraction`` * duration) is nonsense
  and rejected;
* a click between two silences is not sound: a burst of energy no longer than MAX_CLICK_SECONDS
  (one 10 ms window around a click, or a DC step that the high-pass turns into a blip of a few
  ms) joins the silences on both sides, so an isolated click or a sparse crackle inside silence
  moves no cue;
* a tail window that is silent from its first sample says nothing about where the music ends:
  the caller widens it (``wider_tail_start``) until it finds sound or covers the whole track;
  likewise a head window silent throughout is lengthened while a cue-in could still be accepted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from djamms_edge.edge.media.config import AnalysisConfig
from djamms_edge.edge.media.ffparse import Silence


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

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrackAnalysis:
        """The record ``to_json`` wrote (the media worker's answer); KeyError/TypeError/ValueError if it is not one,
        or if its cues could not be played: not finite (JSON allows NaN, which SQLite stores as NULL), before 0
        or ending before they start."""
        loudness = data["loudnessLufs"]
        analysis = cls(float(data["realStartOffset"]), float(data["realEndOffset"]), float(data["duration"]),
                       None if loudness is None else float(loudness), str(data["method"]),
                       tuple(str(note) for note in data["notes"]))
        numbers = (analysis.real_start_offset, analysis.real_end_offset, analysis.duration)
        if not all(map(math.isfinite, numbers)) or not 0 <= analysis.real_start_offset <= analysis.real_end_offset:
            raise ValueError(f"unplayable cues {numbers}")
        if analysis.loudness_lufs is not None and math.isnan(analysis.loudness_lufs):
            raise ValueError("loudness is NaN")
        return analysis


# The energy is averaged over this long: short enough to follow a hard stop, long enough that a
# single sample (a peak, a click) is diluted over the window's hundred-odd samples.
ENERGY_WINDOW_SECONDS = 0.01
# Decoders start a few ms late or early (Opus pre-skip, AAC priming): a silence starting this close
# to the window's first sample, or ending this close to its last, "touches" that edge.
EDGE_TOLERANCE_SECONDS = 0.05
# The head window reaches this far past the cue-in limit so a silence ending just past it is seen
# (and rejected) instead of looking like a window that was silent throughout.
HEAD_MARGIN_SECONDS = 1.0
# Sound this short between two silences is a click, not music: the silences on both sides count as
# one. A click of one sample reads as one energy window (10 ms) of sound; a DC step through the
# high-pass adds its blip (~1 ms at -50 dBFS, ~10 ms at -30 dBFS).
MAX_CLICK_SECONDS = ENERGY_WINDOW_SECONDS + 0.015
# Cues leaving less audible time than this are treated as a detection failure.
MIN_AUDIBLE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Window:
    """One decoded stretch of the track, everything in track time (seconds from the start)."""

    start: float
    end: float
    silences: Sequence[Silence]


def to_track_time(silences: Sequence[Silence], offset: float) -> list[Silence]:
    """ffmpeg numbers a seeked window from 0; the track's clock started ``offset`` seconds earlier."""
    return [Silence(s.start + offset, None if s.end is None else s.end + offset) for s in silences]


@dataclass(frozen=True, slots=True)
class Cues:
    real_start: float
    real_end: float
    notes: tuple[str, ...] = ()


def silence_threshold_db(config: AnalysisConfig, loudness_lufs: float | None) -> float:
    """The 10 ms RMS level (dBFS) under which a track is silent: the absolute threshold, lowered for a
    quiet track whose loudness is known to ``relative_threshold_lu`` under it, but not under the floor."""
    if loudness_lufs is None:
        return config.silence_threshold_db
    relative = loudness_lufs + config.relative_threshold_lu
    return max(min(config.silence_floor_db, config.silence_threshold_db), min(config.silence_threshold_db, relative))


def cue_in_limit(duration: float, config: AnalysisConfig) -> float:
    return max(config.max_cue_in_seconds, config.max_cue_in_fraction * duration)


def wider_head_length(duration: float, head: Window, config: AnalysisConfig) -> float | None:
    """If ``head`` is silent throughout but a cue-in past it could still be accepted, a longer head (else None)."""
    cue_in = _leading_silence(head)
    wanted = cue_in_limit(duration, config) + HEAD_MARGIN_SECONDS
    if cue_in is None or cue_in < head.end - EDGE_TOLERANCE_SECONDS or head.end >= min(duration, wanted):
        return None
    return min(duration, wanted)


def wider_tail_start(duration: float, tail: Window) -> float | None:
    """If ``tail`` is silent from its first sample, where a twice as wide tail starts (None: no need)."""
    cue_out = _trailing_silence(tail)
    if tail.start <= 0 or cue_out is None or cue_out > tail.start + EDGE_TOLERANCE_SECONDS:
        return None
    return max(0.0, tail.start - (duration - tail.start))


def join_clicks(silences: Sequence[Silence]) -> list[Silence]:
    """Silences separated by no more than a click, joined into one."""
    joined: list[Silence] = []
    for silence in silences:
        previous = joined[-1] if joined else None
        if previous is not None and previous.end is not None and silence.start - previous.end <= MAX_CLICK_SECONDS:
            joined[-1] = Silence(previous.start, silence.end)
        else:
            joined.append(silence)
    return joined


def _leading_silence(window: Window) -> float | None:
    """Where a silence touching the window's start ends."""
    silences = join_clicks(window.silences)
    if not silences:
        return None
    first = silences[0]
    if first.start > window.start + EDGE_TOLERANCE_SECONDS:
        return None
    return window.end if first.end is None else min(first.end, window.end)


def _trailing_silence(window: Window) -> float | None:
    """Where a silence touching the window's end begins."""
    silences = join_clicks(window.silences)
    if not silences:
        return None
    last = silences[-1]
    if last.end is not None and last.end < window.end - EDGE_TOLERANCE_SECONDS:
        return None
    return max(last.start, window.start)


def decide(duration: float, head: Window, tail: Window, config: AnalysisConfig) -> Cues:
    """The cues for a track of ``duration`` seconds (the tail may cover the whole track)."""
    notes: list[str] = []
    track_end = min(duration, tail.end) if tail.end > tail.start else duration
    cue_out = _trailing_silence(tail)
    if cue_out is not None and tail.start <= 0 and cue_out <= EDGE_TOLERANCE_SECONDS:
        return Cues(0.0, round(track_end, 3), ("silent",))
    real_end = track_end if cue_out is None else min(cue_out, track_end)

    real_start = 0.0
    cue_in = _leading_silence(head)
    if cue_in is not None:
        limit = cue_in_limit(duration, config)
        if cue_in > limit:
            notes.append(f"cue-in {cue_in:.2f}s rejected (limit {limit:.2f}s)")
        else:
            real_start = cue_in
    if real_end - real_start < MIN_AUDIBLE_SECONDS:
        notes.append(f"cues {real_start:.2f}-{real_end:.2f}s leave almost nothing; ignored")
        return Cues(0.0, round(track_end, 3), tuple(notes))
    return Cues(round(real_start, 3), round(real_end, 3), tuple(notes))
