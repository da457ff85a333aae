"""``[edge.player]``: how the box plays (video or audio only, mpv outputs) and how the engine drives it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from djamms_edge.shared.config_schema import at_least, between, setting


def _name_value_pairs(values: Any) -> str | None:
    bad = [v for v in values if "=" not in v or v.startswith(("-", "="))]
    return f"expected name=value items (no leading '-'), got {bad}" if bad else None


@dataclass(frozen=True)
class PlayerConfig:
    video: bool = setting(True, doc="show the video full screen; false = audio only (mpv vid=no)")
    vo: str = setting("gpu", doc="mpv video output (gpu, drm, null…); used when video = true")
    hwdec: str = setting(
        "", doc="mpv hardware decoding (auto-safe, vaapi, v4l2m2m-copy, no…); empty = the box profile's"
    )
    fullscreen: bool = setting(True, doc="full-screen video")
    ao: str = setting("", doc="mpv audio output (alsa, pulse, pcm, null…); empty = mpv's choice")
    audio_device: str = setting("", doc="mpv audio device, e.g. alsa/hdmi:CARD=vc4hdmi0; empty = default")
    mpv_options: tuple[str, ...] = setting(
        (), doc="extra mpv options as name=value, e.g. ao-pcm-file=/tmp/out.wav", check=_name_value_pairs
    )
    volume: float = setting(100.0, doc="master volume, 0..100, until staff set one (kept across restarts)",
                            check=between(0.0, 100.0))
    loudness_target_lufs: float = setting(
        -14.0, doc="tracks with measured loudness are levelled to this (EBU R128 integrated)",
        check=between(-40.0, 0.0),
    )
    max_gain_db: float = setting(
        12.0, doc="levelling never raises or lowers a track by more than this", check=between(0.0, 30.0)
    )
    skip_fade_s: float = setting(0.8, doc="fade-out length when a track is skipped", check=between(0.0, 10.0))
    lookahead: int = setting(
        1, doc="upcoming entries handed to mpv ahead of time (1 is enough for gapless playback)",
        check=between(1, 10),
    )
    position_save_s: float = setting(
        2.0, doc="how often the playing position is saved (a restart resumes from it)", check=between(0.2, 60.0)
    )
    idle_recheck_s: float = setting(
        30.0, doc="with nothing playable, look for playable tracks again this often", check=at_least(1.0)
    )
    show_request_qr: bool = setting(
        False, doc="show the venue's request QR code on the TV: large while idle, in a corner as each song starts"
    )
    request_qr_url: str = setting("", doc="the address the TV's QR code carries; empty = the hub URL + /v/{venue_id}")
    request_qr_song_start_s: float = setting(
        15.0, doc="how long the corner QR code stays at the start of each song (0 = only while nothing plays)",
        check=between(0.0, 600.0),
    )
