"""analyze() on generated media through real ffmpeg: cue points within ±60 ms of the truth, clean errors."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from djamms_edge.edge.media import decoder, ffmpeg
from djamms_edge.edge.media.analyzer import analyze, analyze_blocking
from djamms_edge.edge.media.config import AnalysisConfig
from djamms_edge.edge.media.ffmpeg import MediaError
from tests.edge.media.conftest import TRUTHS, WHOLE, WINDOWED
from tests.edge.media.http_server import MediaServer
from tests.edge.media.rms_reference import rms_levels

TOLERANCE = 0.060
CASES = [(name, fmt) for name, truth in TRUTHS.items() for fmt in truth.formats]


@pytest.mark.parametrize(("name", "fmt"), CASES, ids=[f"{n}-{f}" for n, f in CASES])
async def test_cue_points_match_the_truth(media_dir: Path, name: str, fmt: str) -> None:
    truth = TRUTHS[name]
    result = await analyze(media_dir / f"{name}.{fmt}", WINDOWED)
    assert result.real_start_offset == pytest.approx(truth.real_start, abs=TOLERANCE)
    assert result.real_end_offset == pytest.approx(truth.real_end, abs=TOLERANCE)
    assert result.duration == pytest.approx(truth.track.duration, abs=TOLERANCE)
    # The one-shot CLI's way (in the calling thread, no event loop) is the same analysis: the same answer.
    assert analyze_blocking(media_dir / f"{name}.{fmt}", WINDOWED) == result


# Where sound starts or stops dead the cue is sample-close: a cue-out late by the high-pass's ringing
# (12 ms) is what made 12 ms seams in playback. Opus is in the tables too since the analysis decodes
# in-process: frames are placed by their timestamps less the container's start time (Opus's pre-skip), so
# its onsets land within 3 ms and its stops within 1 ms (through the ffmpeg CLI they sat 5.5 and 10 ms
# late). Left out, with its measured reason: "short"'s AAC cue-out (the encoder leaves -55 dBFS of noise
# for 20 ms after that stop, which is sound at -60 dBFS).
HARD_TOLERANCE = 0.005
HARD_STARTS = [(name, fmt) for name in ("leading_silence", "short") for fmt in TRUTHS[name].formats]
HARD_ENDS = [
    (name, fmt)
    for name in ("hard_ending", "quiet_intro", "mid_silence", "long_silent_end", "rumble_end", "dc_end")
    for fmt in TRUTHS[name].formats
]


@pytest.mark.parametrize(("name", "fmt"), HARD_STARTS, ids=[f"{n}-{f}" for n, f in HARD_STARTS])
async def test_a_hard_start_is_cued_within_5_ms(media_dir: Path, name: str, fmt: str) -> None:
    result = await analyze(media_dir / f"{name}.{fmt}", WINDOWED)
    assert result.real_start_offset == pytest.approx(TRUTHS[name].real_start, abs=HARD_TOLERANCE)


@pytest.mark.parametrize(("name", "fmt"), HARD_ENDS, ids=[f"{n}-{f}" for n, f in HARD_ENDS])
@pytest.mark.parametrize("config", [WINDOWED, WHOLE], ids=["windows", "tail-covers-all"])
async def test_a_hard_ending_is_cued_within_5_ms(media_dir: Path, name: str, fmt: str, config: AnalysisConfig) -> None:
    result = await analyze(media_dir / f"{name}.{fmt}", config)
    assert result.real_end_offset == pytest.approx(TRUTHS[name].real_end, abs=HARD_TOLERANCE)


@pytest.mark.parametrize("name", ["rumble_end", "dc_end"])
async def test_without_the_high_pass_rumble_and_dc_would_count_as_sound(media_dir: Path, name: str) -> None:
    # The other side of rumble_end/dc_end: the underlay is above -60 dBFS, so the high-pass is what trims it.
    unfiltered = dataclasses.replace(WINDOWED, highpass_hz=0.0)
    result = await analyze(media_dir / f"{name}.m4a", unfiltered)
    assert result.real_end_offset == pytest.approx(13.0, abs=TOLERANCE)


async def test_a_late_cue_in_is_rejected_with_a_reason(media_dir: Path) -> None:
    result = await analyze(media_dir / "late_start.m4a", WINDOWED)
    assert result.real_start_offset == 0.0
    assert any("rejected" in note for note in result.notes)


async def test_a_track_shorter_than_the_tail_window_is_one_pass(media_dir: Path) -> None:
    result = await analyze(media_dir / "mid_silence.webm", WHOLE)
    assert result.method == "whole"
    assert result.real_end_offset == pytest.approx(TRUTHS["mid_silence"].real_end, abs=TOLERANCE)


async def test_full_pass_measures_loudness_and_keeps_a_quiet_fade(media_dir: Path) -> None:
    quiet = media_dir / "quiet_fade.flac"
    fast = await analyze(quiet, WINDOWED)
    full = await analyze(quiet, WINDOWED, full=True)
    assert full.method == "full"
    assert full.loudness_lufs is not None and -45.0 < full.loudness_lufs < -38.0
    # At -60 dBFS the quiet fade's last ~0.65 s is lost; relative to its loudness (-80 dBFS) all but ~70 ms
    # stay. Both where the full-decode 10 ms RMS reading puts them, give or take its grid: ours slides, and
    # the two partials' 110 Hz beat moves a 10 ms window's level by ~1 dB with its phase, which on this
    # slow fade is ~30 ms at -80 dBFS and ~100 ms at -60 dBFS.
    levels = rms_levels(quiet)
    assert full.real_end_offset == pytest.approx(levels.cues(-80.0)[1], abs=0.04)
    assert fast.real_end_offset == pytest.approx(levels.cues(-60.0)[1], abs=0.1)
    assert full.real_end_offset - fast.real_end_offset > 0.4


async def test_loudness_of_a_calibration_tone(tmp_path: Path) -> None:
    # Mono 1 kHz sine, peak 0.1 (-20 dBFS, -23 dBFS RMS): EBU R128 reads it as -23 LUFS.
    tone_file = tmp_path / "1khz.flac"
    await ffmpeg.render(
        tone_file, ["-c:a", "flac"], lavfi=["aevalsrc=0.1*sin(2*PI*1000*t):s=48000:d=8"], limit_seconds=60
    )
    result = await analyze(tone_file, WINDOWED, full=True)
    assert result.loudness_lufs == pytest.approx(-23.0, abs=0.5)


async def test_known_loudness_is_used_without_measuring_again(media_dir: Path) -> None:
    result = await analyze(media_dir / "quiet_fade.flac", WINDOWED, loudness_lufs=-38.0)
    assert result.method == "head+tail"
    assert result.real_end_offset == pytest.approx(rms_levels(media_dir / "quiet_fade.flac").cues(-80.0)[1], abs=0.04)


@pytest.mark.parametrize("fmt", ["mp4", "webm", "m4a"])
@pytest.mark.parametrize("config", [WINDOWED, WHOLE], ids=["tail-past-the-cut", "tail-covers-all"])
async def test_a_truncated_file_is_a_clean_error(
    media_dir: Path, tmp_path: Path, fmt: str, config: AnalysisConfig
) -> None:
    whole = (media_dir / f"hard_ending.{fmt}").read_bytes()
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(MediaError, match=r"not a readable media file|truncated or corrupt"):
        await analyze(cut, config)


async def test_a_truncated_file_with_its_index_first_is_a_clean_error(media_dir: Path, tmp_path: Path) -> None:
    # "faststart" puts the index before the data: the cut file still says how long it should be.
    indexed = tmp_path / "faststart.mp4"
    await ffmpeg.render(
        indexed, ["-c", "copy", "-movflags", "+faststart"], files=[media_dir / "hard_ending.mp4"], limit_seconds=60
    )
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(indexed.read_bytes()[: indexed.stat().st_size // 2])
    for config in (WINDOWED, WHOLE):
        with pytest.raises(MediaError, match="truncated or corrupt"):
            await analyze(cut, config)


async def test_a_text_file_named_mp4_is_a_clean_error(tmp_path: Path) -> None:
    fake = tmp_path / "song.mp4"
    fake.write_text("this is not a video\n")
    with pytest.raises(MediaError, match="not a readable media file"):
        await analyze(fake, WINDOWED)


async def test_a_video_without_audio_is_a_clean_error(tmp_path: Path) -> None:
    silent_film = tmp_path / "film.mp4"
    await ffmpeg.render(
        silent_film, ["-c:v", "libx264", "-preset", "ultrafast"], lavfi=["testsrc2=s=160x90:r=10:d=2"], limit_seconds=60
    )
    with pytest.raises(MediaError, match="has no audio stream"):
        await analyze(silent_film, WINDOWED)


@pytest.mark.parametrize("name", ["-y", "a$(touch x)", "concat:a.mp4|b.mp4", "file.mp4; rm -rf /"])
async def test_strange_names_are_only_ever_file_names(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MediaError, match="no such file"):
        await analyze(name, WINDOWED)
    assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []


async def test_a_file_name_with_quotes_commas_and_colons_is_just_a_name(media_dir: Path, tmp_path: Path) -> None:
    odd = tmp_path / 'it\'s a "song", (live) [x]: $(echo no).m4a'
    odd.write_bytes((media_dir / "hard_ending.m4a").read_bytes())
    result = await analyze(odd, WINDOWED)
    assert result.real_end_offset == pytest.approx(TRUTHS["hard_ending"].real_end, abs=TOLERANCE)


async def test_an_http_url_is_analysed_by_seeking(server: MediaServer) -> None:
    truth = TRUTHS["long_fade_out"]
    result = await analyze(f"{server.url}/media/long_fade_out.mp4", WINDOWED)
    assert result.method == "head+tail"
    assert result.real_end_offset == pytest.approx(truth.real_end, abs=TOLERANCE)


def test_cli_reports_each_input_and_never_a_traceback(media_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("not media")
    marker = tmp_path / "x"
    hostile = f"a$(touch {marker})"
    proc = subprocess.run(
        [sys.executable, "-m", "djamms_edge.edge.cli", "analyze", "--json",
         str(media_dir / "hard_ending.m4a"), str(bad), hostile],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "notes.mp4: not a readable media file" in proc.stderr
    results = json.loads(proc.stdout)
    assert results[0]["realEndOffset"] == pytest.approx(18.0, abs=TOLERANCE)
    assert "error" in results[1] and "error" in results[2]
    assert not marker.exists()


async def test_the_cli_reads_a_url_and_full_mode_as_the_daemon_does(server: MediaServer, media_dir: Path) -> None:
    # The CLI analyses a local file in its own thread; a URL (whose reads can stall: the worker answers at the
    # limit) and --full (an ffmpeg loudness run) go through analyze(), as in the daemon.
    async def cli(*words: str) -> list[dict[str, object]]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "djamms_edge.edge.cli", "analyze", "--json", *words,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        results: list[dict[str, object]] = json.loads(out)
        return results

    truth = TRUTHS["long_fade_out"]
    (remote,) = await cli(f"{server.url}/media/long_fade_out.mp4")
    assert (remote["method"], remote["realEndOffset"]) == ("head+tail", pytest.approx(truth.real_end, abs=TOLERANCE))
    assert any(path == "/media/long_fade_out.mp4" for path, _ in server.requests)
    (full,) = await cli("--full", str(media_dir / "hard_ending.m4a"))
    assert full["method"] == "full"
    assert isinstance(full["loudnessLufs"], float)
    assert full["realEndOffset"] == pytest.approx(TRUTHS["hard_ending"].real_end, abs=TOLERANCE)


@pytest.fixture
def short_network_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stalled read times out in 8 s instead of 20 s. The abandoned decode thread lives until then, and the
    test's event loop waits for it when it closes: 16 s of teardown per test before. 8 s is still well past the
    bounds below (5 s and 4 s), so an analysis that waited for the read to time out still fails them."""
    monkeypatch.setattr(decoder, "NETWORK_TIMEOUT_SECONDS", 8.0)


@pytest.mark.usefixtures("short_network_timeout")
async def test_a_stalled_server_is_given_up_at_the_limit(server: MediaServer) -> None:
    # The server sends half the file and then nothing: the decode is stuck inside one read, and still
    # the caller is answered at its limit (plus the stop grace), not when the read would time out.
    started = time.monotonic()
    with pytest.raises(MediaError, match="took longer than 1s"):
        await analyze(f"{server.url}/stall/long_fade_out.mp4", dataclasses.replace(WINDOWED, timeout_seconds=1.0))
    assert time.monotonic() - started < 1.0 + 2 * decoder.STOP_GRACE_SECONDS


@pytest.mark.usefixtures("short_network_timeout")
async def test_a_cancelled_analysis_of_a_stalled_server_returns(server: MediaServer) -> None:
    task = asyncio.create_task(analyze(f"{server.url}/stall/long_fade_out.mp4", WINDOWED))
    await asyncio.wait_for(server.half_sent.wait(), 10)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 2 * decoder.STOP_GRACE_SECONDS


async def test_idle_night_work_finds_the_same_cues(media_dir: Path) -> None:
    # low_priority runs in the nice-19 worker thread (tests/edge/media/test_decoder.py checks its nice).
    for name in ("hard_ending", "leading_silence"):
        ours = await analyze(media_dir / f"{name}.m4a", WINDOWED, low_priority=True)
        assert (ours.real_start_offset, ours.real_end_offset) == (
            pytest.approx(TRUTHS[name].real_start, abs=HARD_TOLERANCE),
            pytest.approx(TRUTHS[name].real_end, abs=HARD_TOLERANCE),
        )


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/media/nope.mp4", "Server returned 404 Not Found"),
        ("/forbidden/x.mp4", "Server returned 403 Forbidden"),
        ("/error/x.mp4", "Server returned 5XX Server Error"),
    ],
)
async def test_an_http_error_is_a_clean_error_saying_what_the_server_answered(
    server: MediaServer, path: str, message: str
) -> None:
    with pytest.raises(MediaError, match=f"^{re.escape(server.url + path)}: {message}"):
        await analyze(server.url + path, WINDOWED)
