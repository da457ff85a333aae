"""The real thing end to end: local queue -> cues -> engine -> libmpv -> a PCM capture.

Each track is a sine of its own frequency with 2 s of silence before and 3 s after, so the
capture shows which track played when, how much of it, and every silence a listener hears.
Cues come either from the truth the tracks were built with (what the player does with exact
cues) or from the media pipeline's analysis (what a venue hears).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from djamms_edge.edge.media.config import AnalysisConfig
from djamms_edge.edge.player.capture import capture_playback
from djamms_edge.edge.player.resolver import Cue, LocalFileResolver
from djamms_edge.edge.player.seams import render_tone, seams, tones
from djamms_edge.edge.queue.model import QueueEntry
from tests.edge.tones import rendered

LEAD, TONE, TRAIL = 2.0, 3.0, 3.0
FREQUENCIES = (300, 700, 1500)


@pytest.fixture(scope="module")
def tracks(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("tones")
    paths = rendered(*(render_tone(root / f"{hz}.m4a", hz, lead=LEAD, tone=TONE, trail=TRAIL) for hz in FREQUENCIES))
    return dict(zip(FREQUENCIES, paths, strict=True))


class TruthResolver:
    """The cues the tracks were generated with."""

    async def resolve(self, entry: QueueEntry) -> Cue:
        return Cue(Path(entry.source), LEAD, LEAD + TONE)


def analysed(trim: bool = True) -> LocalFileResolver:
    return LocalFileResolver(AnalysisConfig(), target_lufs=-14.0, max_gain_db=12.0, trim=trim)


def assert_order(found: Sequence[float], expected: Sequence[int]) -> None:
    assert len(found) >= len(expected), found
    for hz, want in zip(found, expected, strict=False):
        assert hz == pytest.approx(want, rel=0.1), found


@pytest.fixture
def playlist(tmp_path: Path, tracks: dict[int, Path]) -> Path:
    path = tmp_path / "playlist.txt"
    path.write_text(f"{tracks[700]}\n{tracks[1500]}\n")
    return path


async def test_cued_tracks_play_back_to_back_with_the_paid_request_first(
    tmp_path: Path, tracks: dict[int, Path], playlist: Path,
) -> None:
    capture = (await capture_playback(tmp_path, playlist, TruthResolver(), requests=[tracks[300]])).capture
    found = tones(capture)[:3]
    assert_order([t.hz for t in found], [300, 700, 1500])
    for tone in found:  # every audible part is there, nothing cut off either end
        assert tone.length == pytest.approx(TONE, abs=0.005)
    gaps = [s.silence_ms for s in seams(capture)[:2]]
    assert max(gaps) <= 5.0, gaps


async def test_with_analysed_cues_the_player_adds_no_silence_of_its_own(
    tmp_path: Path, tracks: dict[int, Path], playlist: Path,
) -> None:
    resolver = analysed()
    capture = (await capture_playback(tmp_path, playlist, resolver, requests=[tracks[300]])).capture
    found = tones(capture)[:3]
    assert_order([t.hz for t in found], [300, 700, 1500])
    for tone in found:
        assert tone.length >= TONE - 0.005  # the analysis never cuts into sound
    cues = {hz: await resolver.resolve(QueueEntry("x", str(path))) for hz, path in tracks.items()}
    for seam, (before, after) in zip(seams(capture)[:2], [(300, 700), (700, 1500)], strict=True):
        # Silence the cues leave in: after the tone (cue-out late) plus before the next (cue-in early).
        left_in = (cues[before].end or 0) - (LEAD + TONE) + LEAD - cues[after].start
        assert seam.silence_ms <= max(0.0, left_in) * 1000 + 1.5, (seam, left_in)


async def test_untrimmed_tracks_have_the_gaps_trimming_removes(
    tmp_path: Path, tracks: dict[int, Path], playlist: Path,
) -> None:
    capture = (await capture_playback(tmp_path, playlist, analysed(trim=False), requests=[tracks[300]])).capture
    assert_order([t.hz for t in tones(capture)[:3]], [300, 700, 1500])
    gaps = [s.silence_ms for s in seams(capture)[:2]]
    assert min(gaps) >= (TRAIL + LEAD) * 1000 - 50, gaps


async def test_missing_and_corrupt_files_are_skipped_and_playback_continues(
    tmp_path: Path, tracks: dict[int, Path], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="djamms_edge.edge.player.engine")
    corrupt = tmp_path / "corrupt.m4a"
    corrupt.write_bytes(tracks[700].read_bytes()[:4000])  # a download cut short
    missing = tmp_path / "missing.m4a"
    playlist = tmp_path / "playlist.txt"
    playlist.write_text(f"{tracks[300]}\n{missing}\n{corrupt}\n{tracks[1500]}\n")
    result = await capture_playback(tmp_path, playlist, analysed(), plays=2)
    found = tones(result.capture)[:2]
    assert_order([t.hz for t in found], [300, 1500])
    assert all(t.length >= TONE - 0.005 for t in found)
    assert set(result.unplayable) == {str(missing), str(corrupt)}
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping")]
    assert len(skipped) == 2, skipped  # one line per bad track, however often the rotation meets it
