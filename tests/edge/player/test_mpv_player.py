"""What a config and an item turn into for libmpv, and per-file gain and cues heard in a PCM capture."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

import pytest

from djamms_edge.edge.media import synth
from djamms_edge.edge.player.api import Ended, EndReason, PlaybackItem, PlayerEvent, Started
from djamms_edge.edge.player.config import PlayerConfig
from djamms_edge.edge.player.mpv_player import MpvPlayer, file_options, mpv_options, probe_outputs
from djamms_edge.edge.player.request_qr import QrPlacement, RequestQr
from djamms_edge.edge.player.seams import read_wav, tones
from djamms_edge.shared.config_schema import ConfigError, load
from tests.browser import screenshot_path
from tests.edge.player.conftest import Media
from tests.edge.player.screen import SoftwareScreen, decode_qr


@pytest.mark.parametrize(
    ("config", "expected", "absent"),
    [
        pytest.param(PlayerConfig(), {"vo": "gpu", "hwdec": "auto-safe", "fullscreen": "yes",
                                      "force-window": "immediate"}, {"vid", "ao"}, id="video-box-defaults"),
        pytest.param(PlayerConfig(hwdec="v4l2m2m-copy", fullscreen=False), {"hwdec": "v4l2m2m-copy",
                     "fullscreen": "no"}, set(), id="raspberry-pi-decoder"),
        pytest.param(PlayerConfig(video=False), {"vid": "no", "vo": "null"}, {"hwdec", "fullscreen"},
                     id="audio-only-never-decodes-video"),
        pytest.param(PlayerConfig(ao="alsa", audio_device="alsa/hdmi"), {"ao": "alsa", "audio-device": "alsa/hdmi"},
                     set(), id="audio-device"),
        pytest.param(PlayerConfig(mpv_options=("ao-pcm-file=/srv/x.wav", "volume = 50")),
                     {"ao-pcm-file": "/srv/x.wav", "volume": "50"}, set(), id="extra-options-win"),
    ],
)
def test_mpv_options(config: PlayerConfig, expected: dict[str, str], absent: set[str]) -> None:
    options = mpv_options(config)
    assert {k: options.get(k) for k in expected} == expected
    assert not absent & options.keys()
    # Always: gapless with the next file opened early, no user config, scripts or youtube-dl.
    assert {k: options[k] for k in ("gapless-audio", "prefetch-playlist", "config", "ytdl")} == {
        "gapless-audio": "yes", "prefetch-playlist": "yes", "config": "no", "ytdl": "no"}


@pytest.mark.parametrize(
    ("item", "video", "expected"),
    [
        (PlaybackItem("p", Path("/a.m4a")), False, "start=0.000"),
        (PlaybackItem("p", Path("/a.m4a"), 1.25, 200.5), False, "start=1.250,end=200.500"),
        (PlaybackItem("p", Path("/a.m4a"), 0, None, -6.5), False, "start=0.000,af=volume=volume=-6.50dB"),
        (PlaybackItem("p", Path("/a.mp4"), 1.25, 200.5), True, "start=1.208,end=200.500"),
        (PlaybackItem("p", Path("/a.mp4"), 0.02), True, "start=0.000"),
    ],
)
def test_file_options(item: PlaybackItem, video: bool, expected: str) -> None:
    assert file_options(item, video) == expected


def test_option_values_must_be_name_value_pairs() -> None:
    with pytest.raises(ConfigError, match="mpv_options"):
        load(PlayerConfig, {"mpv_options": ["--really-quiet"]}, env={})


async def test_cues_and_gain_are_applied_per_file(tmp_path: Path, media: Media) -> None:
    capture = tmp_path / "out.wav"
    config = PlayerConfig(video=False, ao="pcm", mpv_options=(f"ao-pcm-file={capture}",))
    events: asyncio.Queue[PlayerEvent] = asyncio.Queue()
    player = MpvPlayer(config)
    await player.open(events.put_nowait)
    try:
        # The short tones have 0.2 s of silence, 0.6 s of tone, 0.2 s of silence.
        player.set_upcoming([PlaybackItem("full", media.short[0], 0.2, 0.8),
                             PlaybackItem("quiet", media.short[1], 0.2, 0.8, gain_db=-6.0),
                             PlaybackItem("part", media.short[2], 0.4, 0.6)])
        ended = 0
        async with asyncio.timeout(20):
            while ended < 3:
                ended += isinstance(await events.get(), Ended)
    finally:
        await player.close()
    found = tones(read_wav(capture))
    assert [round(t.hz, -2) for t in found] == [300, 700, 1500]
    assert [round(t.length, 2) for t in found] == [0.6, 0.6, 0.2]
    wav = read_wav(capture)
    peaks = [max(abs(x) for x in wav.samples[round(t.start * wav.rate): round(t.end * wav.rate)]) for t in found]
    assert peaks[1] / peaks[0] == pytest.approx(10 ** (-6 / 20), rel=0.05)  # -6 dB on that file only
    assert peaks[2] / peaks[0] == pytest.approx(1.0, rel=0.05)  # and restored for the next


async def test_video_mode_plays_a_music_video_between_its_cues(tmp_path: Path) -> None:
    """The video path (decoding H.264, a video output) on a headless box: vo=null stands in for the screen."""
    track = synth.SynthTrack((synth.silence(0.5), synth.tone(2.0), synth.silence(0.5)))
    video = (await synth.render(track, tmp_path, "clip", ("mp4",)))["mp4"]
    capture = tmp_path / "out.wav"
    config = PlayerConfig(video=True, vo="null", hwdec="no", ao="pcm", mpv_options=(f"ao-pcm-file={capture}",))
    events: asyncio.Queue[PlayerEvent] = asyncio.Queue()
    player = MpvPlayer(config)
    await player.open(events.put_nowait)
    try:
        player.set_upcoming([PlaybackItem("clip", video, 0.5, 2.5)])
        async with asyncio.timeout(20):
            assert [await events.get(), await events.get()] == [Started("clip"), Ended("clip", EndReason.FINISHED)]
    finally:
        await player.close()
    wav = read_wav(capture)
    heard = [i / wav.rate for i, x in enumerate(wav.samples) if abs(x) >= 1e-3]
    assert heard[0] <= 0.045  # at most a frame of silence before the first sound
    assert heard[-1] - heard[0] == pytest.approx(2.0, abs=0.005)  # and none of the sound lost


async def test_a_screen_that_cannot_open_falls_back_to_audio_only(
    tmp_path: Path, media: Media, caplog: pytest.LogCaptureFixture,
) -> None:
    """A DRM output on a device that does not exist: one warning, and tracks still play (not marked broken)."""
    config = PlayerConfig(video=True, vo="drm", hwdec="no", ao="null",
                          mpv_options=(f"drm-device={tmp_path / 'no-such-card'}",))
    events: asyncio.Queue[PlayerEvent] = asyncio.Queue()
    player = MpvPlayer(config)
    await player.open(events.put_nowait)
    try:
        player.set_upcoming([PlaybackItem("a", media.short[0], 0.2, 0.8)])
        async with asyncio.timeout(10):
            assert [await events.get(), await events.get()] == [Started("a"), Ended("a", EndReason.FINISHED)]
    finally:
        await player.close()
    assert [r.getMessage() for r in caplog.records if "cannot be opened" in r.getMessage()] != []


@pytest.mark.parametrize("sample_format", ["s16", "s32", "float", "double", "u8"])
async def test_every_wav_format_mpv_writes_reads_back(tmp_path: Path, media: Media, sample_format: str) -> None:
    # mpv picks the capture's sample format from the decoded audio (real music often gives s32 or float).
    capture = tmp_path / "out.wav"
    options = (f"ao-pcm-file={capture}", f"audio-format={sample_format}")
    player = MpvPlayer(PlayerConfig(video=False, ao="pcm", mpv_options=options))
    events: asyncio.Queue[PlayerEvent] = asyncio.Queue()
    await player.open(events.put_nowait)
    try:
        player.set_upcoming([PlaybackItem("tone", media.short[0], 0.2, 0.8)])
        async with asyncio.timeout(20):
            while not isinstance(await events.get(), Ended):
                pass
    finally:
        await player.close()
    wav = read_wav(capture)
    assert [(round(t.hz, -2), round(t.length, 2)) for t in tones(wav)] == [(300, 0.6)]
    assert 0.3 < max(abs(x) for x in wav.samples) <= 1.0  # scaled to full scale, not raw integers


async def test_the_request_qr_code_on_the_screen_scans_back_to_the_patron_page(tmp_path: Path) -> None:
    """What the TV shows, rendered by libmpv's software renderer and read by a QR reader (zbar): the code sits
    in the corner as a song starts, leaves after the first seconds, and fills the screen when the music stops.
    (The very first idle window, before any song, renders black now and then with vo=libmpv's first frame, so
    the full-screen code is read after a song instead; both are the same 'nothing plays' state.)"""
    track = synth.SynthTrack((synth.tone(6.0),))
    video = (await synth.render(track, tmp_path, "clip", ("mp4",)))["mp4"]
    url = "http://192.168.1.20:8700/v/the-crown-and-anchor"
    # vo=libmpv opens only once a render context exists, so the window is forced on after it, as the box has it.
    config = PlayerConfig(video=True, vo="libmpv", hwdec="no", ao="null", mpv_options=("force-window=no",))
    events: asyncio.Queue[PlayerEvent] = asyncio.Queue()
    player = MpvPlayer(config)
    await player.open(events.put_nowait)
    screen = SoftwareScreen(player._mpv.handle)
    player._mpv["force-window"] = "yes"

    async def shows(name: str, tries: int = 1) -> list[str]:
        for _ in range(tries):
            await asyncio.sleep(0.4)  # the OSD is redrawn with the next frame
            found = decode_qr(screen.save_png(await asyncio.to_thread(screen.grab), screenshot_path(name)))
            if found:
                break
        return found

    try:
        player.show_request_qr(RequestQr(url, song_start_s=1.5))
        assert player.request_qr is QrPlacement.SCREEN  # its pixels are checked once the music stops, below
        player.set_upcoming([PlaybackItem("clip", video)])
        async with asyncio.timeout(20):
            assert await events.get() == Started("clip")
        assert player.request_qr is QrPlacement.CORNER
        assert await shows("tv-request-qr-song-start.png") == [url]
        await asyncio.sleep(1.5)
        assert player.request_qr is None
        assert await shows("tv-request-qr-mid-song.png") == []
        player.stop()
        assert await events.get() == Ended("clip", EndReason.STOPPED)
        assert player.request_qr is QrPlacement.SCREEN
        assert await shows("tv-request-qr-idle.png", tries=5) == [url]
    finally:
        screen.free()
        await player.close()


async def test_a_libmpv_without_one_of_the_lean_options_starts_without_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A later mpv may rename a built-in script's switch: the box still plays (the option is only a saving)."""
    from djamms_edge.edge.player import mpv_player

    monkeypatch.setitem(mpv_player.LEAN_OPTIONS, "load-renamed-in-a-later-mpv", "no")
    caplog.set_level("INFO", logger=mpv_player.__name__)
    player = MpvPlayer(PlayerConfig(video=False, ao="null"))
    await player.open(lambda _event: None)
    try:
        await player.probe()
    finally:
        await player.close()
    assert "this libmpv has no option load-renamed-in-a-later-mpv: starting without it" in caplog.text


def test_the_output_probe_sees_the_audio_output_open_when_python_is_slow() -> None:
    """The doctor's probe on a loaded box: Python's side of libmpv (the thread that hears property changes) is
    held off for a while, as the GIL and a busy CPU do. The output still counts as open; it did not when the
    probe's silence was shorter than the stall (the open and close coalesced into no change at all)."""
    stop = threading.Event()

    def hog() -> None:  # holds the GIL for whole switch intervals, as a busy interpreter does under load
        while not stop.is_set():
            pass

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.15)
    busy = threading.Thread(target=hog)
    busy.start()
    try:
        probe = probe_outputs(PlayerConfig(video=False, ao="null"))
    finally:
        stop.set()
        busy.join()
        sys.setswitchinterval(interval)
    assert (probe.audio_output, probe.audio_error) == ("null", "")
