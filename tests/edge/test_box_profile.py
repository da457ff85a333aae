"""Box profiles: which hardware this is, and the format yt-dlp's own selector then picks from format lists
shaped like YouTube's itag tables (H.264, VP9 and AV1 at several heights; audio-only m4a and webm)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yt_dlp

from djamms_edge.config import Config
from djamms_edge.edge.box_profile import PROFILES, board_model, detect, with_box_profile
from djamms_edge.edge.media.config import FetchConfig
from djamms_edge.edge.media.fetcher import format_selector
from djamms_edge.edge.player.config import PlayerConfig


@pytest.mark.parametrize(
    ("model", "machine", "nodes", "profile"),
    [
        ("Raspberry Pi 4 Model B Rev 1.4", "aarch64", ["renderD128"], "pi4"),
        ("Raspberry Pi 400 Rev 1.0", "aarch64", [], "pi4"),
        ("Raspberry Pi Compute Module 4 Rev 1.0", "aarch64", [], "pi4"),
        ("Raspberry Pi 5 Model B Rev 1.0", "aarch64", ["renderD128"], "pi5"),
        ("Raspberry Pi 3 Model B Plus Rev 1.3", "aarch64", [], "generic"),
        ("", "x86_64", ["renderD128"], "x86-vaapi"),
        ("", "x86_64", [], "x86"),
        ("", "riscv64", [], "generic"),
    ],
)
def test_the_hardware_is_recognised(model: str, machine: str, nodes: list[str], profile: str) -> None:
    found = detect(model, machine, nodes)
    assert found.name == profile
    assert found.why  # the daemon's log says what it saw


def test_the_board_model_is_read_from_the_device_tree(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\x00")  # the device tree's NUL-terminated string
    assert board_model([tmp_path / "absent", model]) == "Raspberry Pi 5 Model B Rev 1.0"
    assert board_model([tmp_path / "absent"]) == ""


def _video(itag: str, ext: str, vcodec: str, height: int, tbr: float, acodec: str = "none") -> dict[str, Any]:
    return {"format_id": itag, "ext": ext, "vcodec": vcodec, "acodec": acodec, "height": height,
            "width": height * 16 // 9, "fps": 30, "tbr": tbr, "protocol": "https", "url": f"https://v/{itag}"}


def _audio(itag: str, ext: str, acodec: str, abr: float) -> dict[str, Any]:
    return {"format_id": itag, "ext": ext, "vcodec": "none", "acodec": acodec, "abr": abr, "tbr": abr,
            "protocol": "https", "url": f"https://a/{itag}"}


# A music video as YouTube lists it (itags, codec strings and bitrates as yt-dlp reports them).
YOUTUBE = [
    _audio("139", "m4a", "mp4a.40.5", 48), _audio("140", "m4a", "mp4a.40.2", 129),
    _audio("249", "webm", "opus", 50), _audio("250", "webm", "opus", 70), _audio("251", "webm", "opus", 135),
    _video("18", "mp4", "avc1.42001E", 360, 400, acodec="mp4a.40.2"),
    _video("134", "mp4", "avc1.4D401E", 360, 300), _video("135", "mp4", "avc1.4D401F", 480, 600),
    _video("136", "mp4", "avc1.4D401F", 720, 1200), _video("137", "mp4", "avc1.640028", 1080, 2500),
    _video("243", "webm", "vp9", 360, 250), _video("244", "webm", "vp9", 480, 450),
    _video("247", "webm", "vp9", 720, 900), _video("248", "webm", "vp9", 1080, 1800),
    _video("396", "mp4", "av01.0.01M.08", 360, 200), _video("397", "mp4", "av01.0.04M.08", 480, 380),
    _video("398", "mp4", "av01.0.05M.08", 720, 750), _video("399", "mp4", "av01.0.08M.08", 1080, 1500),
]


def without(*prefixes: str) -> list[dict[str, Any]]:
    return [f for f in YOUTUBE if not f["vcodec"].startswith(prefixes)]


def choose(fetch: FetchConfig, formats: list[dict[str, Any]]) -> str:
    """yt-dlp's own sort and selector, as a download runs them."""
    with yt_dlp.YoutubeDL({"quiet": True}) as ydl:
        info = {"formats": [dict(f) for f in formats], "has_merged_format": False, "incomplete_formats": False}
        ydl.sort_formats(info)
        select = ydl.build_format_selector(format_selector(fetch))
        return "+".join(p["format_id"] for p in select(info))


def fetch_for(profile: str, **settings: Any) -> FetchConfig:
    """The fetch config the daemon runs with on that box (the profile fills in what the settings leave open)."""
    return with_box_profile(replace(Config(), edge=replace(Config().edge, fetch=FetchConfig(**settings))),
                            PROFILES[profile]).edge.fetch


@pytest.mark.parametrize(
    ("profile", "formats", "settings", "chosen"),
    [
        ("pi4", YOUTUBE, {}, "136+140"),  # H.264 720p decoded in hardware, AAC beside it
        ("pi4", without("avc1"), {}, "247+251"),  # no H.264: VP9 in software, never AV1
        ("pi4", without("avc1", "vp9"), {}, "398+251"),  # AV1 only when nothing else is offered
        ("pi4", YOUTUBE, {"max_height": 480}, "135+140"),
        ("pi4", YOUTUBE, {"mode": "audio"}, "140"),
        ("pi5", YOUTUBE, {}, "136+140"),  # no HEVC offered: H.264 (software on a Pi 5, which copes)
        ("pi5", without("avc1"), {}, "247+251"),  # and still not AV1
        ("x86-vaapi", YOUTUBE, {}, "136+140"),
        ("x86", without("avc1"), {}, "247+251"),
        ("x86", without("avc1", "vp9"), {}, "398+251"),  # a PC decodes AV1
        ("pi4", YOUTUBE, {"video_codecs": ("vp9",)}, "247+251"),  # config overrides the profile
    ],
)
def test_the_format_fits_the_box(profile: str, formats: list[dict[str, Any]], settings: dict[str, Any],
                                 chosen: str) -> None:
    assert choose(fetch_for(profile, **settings), formats) == chosen


def test_without_a_profile_the_best_format_under_the_cap_is_taken() -> None:
    """yt-dlp's own ranking (AV1 first): what the old selector fell back to on a Pi when no H.264 was offered."""
    assert choose(FetchConfig(), without("avc1")) == "398+251"


def test_the_profile_fills_only_what_the_config_leaves_open() -> None:
    pi4 = PROFILES["pi4"]
    filled = with_box_profile(Config(), pi4)
    assert (filled.edge.fetch.video_codecs, filled.edge.player.hwdec) == (pi4.codecs, "v4l2m2m-copy")
    own = replace(Config().edge, player=PlayerConfig(hwdec="no"), fetch=FetchConfig(video_codecs=("vp9",)))
    kept = with_box_profile(replace(Config(), edge=own), pi4)
    assert (kept.edge.fetch.video_codecs, kept.edge.player.hwdec) == (("vp9",), "no")
