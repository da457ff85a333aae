"""decoder: PyAV in this process, on files real ffmpeg wrote. Windows start and end where the seeks say, to
the sample; mono and sample formats read as ffmpeg's own decode reads them; a cancelled or overdue job
stops; low-priority work runs at nice 19; the protocol whitelist holds."""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from djamms_edge.edge.media import decoder, ffmpeg
from djamms_edge.edge.media.decoder import Pcm, _spans
from djamms_edge.edge.media.ffmpeg import MediaError, MediaInput, Seek, media_input
from tests.edge.media.http_server import MediaServer
from tests.edge.media.rms_reference import decode

RATE = 24000
SECONDS = 30.0
# Each sample says when it is: its value is its time / 32 (a ramp from 0 to ~0.94 over the 30 s).
RAMP = f"aevalsrc=t/32:s={RATE}:d={SECONDS}"
RAMP_FORMATS = {
    "s16.flac": ["-c:a", "flac", "-sample_fmt", "s16"],
    "s32.flac": ["-c:a", "flac", "-sample_fmt", "s32"],  # 24-bit FLAC decodes to 32-bit integers
    "u8.wav": ["-c:a", "pcm_u8"],
    "f32.wav": ["-c:a", "pcm_f32le"],
    "f64.wav": ["-c:a", "pcm_f64le"],
}
PRECISION = {"u8.wav": 1 / 128, "s16.flac": 1 / 2**15}


def _read(path: Path, seeks: dict[str, Seek], max_rate: float = math.inf) -> tuple[dict[str, Pcm], float | None]:
    return decoder.read_windows(media_input(path), seeks, decoder.Stop("test", 60), max_rate=max_rate)


@pytest.fixture(scope="module")
def ramps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("ramps")

    async def render_all() -> None:
        for name, options in RAMP_FORMATS.items():
            await ffmpeg.render(directory / f"ramp.{name}", options, lavfi=[RAMP], limit_seconds=60)

    asyncio.run(render_all())
    return {name: directory / f"ramp.{name}" for name in RAMP_FORMATS}


@pytest.mark.parametrize("fmt", list(RAMP_FORMATS))
@pytest.mark.parametrize("max_rate", [math.inf, 8000.0], ids=["every-sample", "every-3rd"])
def test_each_sample_is_where_the_window_says(ramps: dict[str, Path], fmt: str, max_rate: float) -> None:
    seeks = {"head": Seek(length=8.0), "middle": Seek(start=12.5, length=3.0), "tail": Seek(last=10.0)}
    windows, duration = _read(ramps[fmt], seeks, max_rate)
    assert duration == pytest.approx(SECONDS, abs=0.01)
    expected = {"head": (0.0, 8.0), "middle": (12.5, 15.5), "tail": (20.0, SECONDS)}
    for name, (start, end) in expected.items():
        pcm = windows[name]
        assert pcm.rate == (RATE if max_rate == math.inf else 8000)
        assert (pcm.start, pcm.end) == (pytest.approx(start, abs=1 / RATE), pytest.approx(end, abs=1 / RATE))
        times = pcm.start + np.arange(len(pcm.samples)) / pcm.rate
        assert np.abs(pcm.samples - times / 32).max() <= PRECISION.get(fmt, 1e-6)


@pytest.mark.parametrize("fmt", ["s16.flac", "f32.wav"])
def test_small_batches_read_the_same_samples(
    ramps: dict[str, Path], fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Frames are downmixed and thinned in batches (bounded memory for a long window): the batch size
    # must not show, neither in the trimming nor in every-3rd-sample's phase.
    seeks = {"head": Seek(length=8.0), "middle": Seek(start=12.5, length=3.0), "tail": Seek(last=10.0)}
    whole, _ = _read(ramps[fmt], seeks, 8000.0)
    monkeypatch.setattr(decoder, "BATCH_SAMPLES", 1000)
    batched, _ = _read(ramps[fmt], seeks, 8000.0)
    for name, pcm in whole.items():
        assert (batched[name].start, batched[name].rate) == (pcm.start, pcm.rate)
        assert np.array_equal(batched[name].samples, pcm.samples)


def test_windows_that_overlap_are_one_decode_cut_twice(ramps: dict[str, Path]) -> None:
    windows, _ = _read(ramps["f32.wav"], {"head": Seek(length=8.0), "tail": Seek(last=40.0)})
    assert (windows["head"].start, windows["head"].end) == (0.0, 8.0)
    assert (windows["tail"].start, windows["tail"].end) == (0.0, SECONDS)
    assert np.array_equal(windows["tail"].samples[: 8 * RATE], windows["head"].samples)


@pytest.mark.parametrize(
    ("wanted", "spans"),
    [
        ({"head": (0.0, 8.0), "tail": (100.0, math.inf)}, [(0.0, 8.0, ["head"]), (100.0, math.inf, ["tail"])]),
        ({"head": (0.0, 8.0), "tail": (12.0, math.inf)}, [(0.0, math.inf, ["head", "tail"])]),  # 4 s apart
        ({"head": (0.0, 8.0), "tail": (0.0, math.inf)}, [(0.0, math.inf, ["head", "tail"])]),
        ({"tail": (30.0, 40.0), "head": (0.0, 8.0)}, [(0.0, 8.0, ["head"]), (30.0, 40.0, ["tail"])]),
        ({"tail": (50.0, math.inf)}, [(50.0, math.inf, ["tail"])]),
    ],
)
def test_spans(wanted: dict[str, tuple[float, float]], spans: list[tuple[float, float, list[str]]]) -> None:
    assert _spans(wanted) == spans


@pytest.mark.parametrize(
    ("layout", "source"),
    [
        ("stereo", "aevalsrc=0.5*sin(2*PI*440*t)|0.25*sin(2*PI*660*t)"),
        ("mono", "aevalsrc=0.5*sin(2*PI*440*t)"),
        ("5.1", "aevalsrc=0.3*sin(2*PI*440*t)|0.2*sin(2*PI*550*t)|0.4*sin(2*PI*660*t)|0.1|0.2*sin(2*PI*990*t)|0"),
    ],
)
async def test_mono_is_what_ffmpegs_own_downmix_makes(tmp_path: Path, layout: str, source: str) -> None:
    # The reference reading (tests/edge/media/rms_reference.py) downmixes with `ffmpeg -ac 1`: same samples.
    path = tmp_path / f"{layout}.wav"
    await ffmpeg.render(path, ["-c:a", "pcm_f32le"], lavfi=[f"{source}:s=44100:d=3"], limit_seconds=60)
    windows, _ = _read(path, {"all": Seek()})
    theirs, rate = decode(path)
    assert windows["all"].rate == rate
    assert np.abs(windows["all"].samples - theirs).max() < 1e-6


async def test_not_media_and_no_audio_are_clean_errors(tmp_path: Path) -> None:
    text = tmp_path / "song.mp4"
    text.write_text("this is not a video\n")
    with pytest.raises(MediaError, match=r"song\.mp4: not a readable media file"):
        _read(text, {"head": Seek(length=8)})
    film = tmp_path / "film.mp4"
    await ffmpeg.render(film, ["-c:v", "libx264", "-preset", "ultrafast"], lavfi=["testsrc2=s=64x64:d=1"],
                        limit_seconds=60)  # fmt: skip
    with pytest.raises(MediaError, match=r"film\.mp4: has no audio stream"):
        _read(film, {"head": Seek(length=8)})


async def test_a_local_playlist_cannot_reach_the_network(tmp_path: Path) -> None:
    # An HLS playlist on disk naming a segment on a server: read as a file, the whitelist ("file") keeps
    # ffmpeg's HLS demuxer from fetching it; with http allowed (the control), the request does arrive.
    server = MediaServer(tmp_path)
    await server.start()
    try:
        playlist = tmp_path / "list.m3u8"
        playlist.write_text(
            f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{server.url}/media/segment.ts\n#EXT-X-ENDLIST\n"
        )
        with pytest.raises(MediaError):
            await asyncio.to_thread(_read, playlist, {"head": Seek(length=8)})
        assert server.requests == []
        opened = MediaInput(f"file:{playlist}", "file,http,tcp", "control")
        with pytest.raises(MediaError):
            await asyncio.to_thread(
                decoder.read_windows, opened, {"head": Seek(length=8)}, decoder.Stop("test", 60), max_rate=8000
            )
        assert [path for path, _ in server.requests] == ["/media/segment.ts"]
    finally:
        await server.close()


def _endless(finished: threading.Event) -> Callable[[decoder.Stop], None]:
    def job(stop: decoder.Stop) -> None:
        try:
            while True:
                stop.check()
                time.sleep(0.005)
        finally:
            finished.set()

    return job


async def test_a_cancelled_job_stops() -> None:
    finished = threading.Event()
    task = asyncio.create_task(decoder.run(_endless(finished), what="endless", limit_seconds=60))
    await asyncio.sleep(0.1)
    assert not finished.is_set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()  # the worker thread has stopped by the time the caller is told


async def test_a_job_past_its_limit_is_stopped() -> None:
    finished = threading.Event()
    with pytest.raises(MediaError, match="endless: decoding took longer than 0s and was stopped"):
        await decoder.run(_endless(finished), what="endless", limit_seconds=0.2)
    assert finished.is_set()


def _nice(stop: decoder.Stop) -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


async def test_low_priority_work_runs_at_nice_19_and_nothing_else_does() -> None:
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    assert await decoder.run(_nice, what="x", limit_seconds=10, low_priority=True) == 19
    assert await decoder.run(_nice, what="x", limit_seconds=10) == ours
    assert os.getpriority(os.PRIO_PROCESS, 0) == ours
