"""Config sections of the media pipeline: ``[edge.analysis]``, ``[edge.fetch]``, ``[edge.cache]``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from djamms_edge.shared.config_schema import at_least, between, setting

# yt-dlp's video codec families: H.264, H.265, VP9, AV1 (djamms_edge.edge.box_profile says which a box plays well).
Codec = Literal["avc1", "hevc", "vp9", "av1"]


@dataclass(frozen=True)
class AnalysisConfig:
    # Under -60 dBFS RMS over 10 ms (sox's silence, Liquidsoap's blank.detect): every audible bit of a
    # fade-out stays, inaudible reverb and hiss tails go.
    silence_threshold_db: float = setting(
        -60.0, doc="a 10 ms stretch whose RMS level is under this (dBFS) is silent", check=between(-100.0, -20.0)
    )
    # Liquidsoap's autocue cues out 42 LU under the track's loudness; we use it only to *lower* the
    # threshold for quiet tracks, which the player raises by gain (their -60 dBFS tail becomes audible).
    relative_threshold_lu: float = setting(
        -42.0,
        doc="with loudness known: silence is also this far under it (LU); the lower threshold wins",
        check=between(-80.0, -10.0),
    )
    # 16-bit dither and lossy codecs leave noise around -90 dBFS: under -80 a raised noise floor counts.
    silence_floor_db: float = setting(
        -80.0,
        doc="the loudness-relative threshold never goes under this (dBFS RMS): a noise floor is not music",
        check=between(-100.0, -20.0),
    )
    min_silence_seconds: float = setting(
        0.1, doc="shortest run of silent samples that counts as silence", check=between(0.01, 5.0)
    )
    highpass_hz: float = setting(
        80.0, doc="rumble/DC under this is ignored (LibreTime uses ~80 Hz)", check=between(0.0, 500.0)
    )
    # Every k-th sample: the energy of what lies above the lower rate's half folds under it (hiss keeps its
    # energy). Measured on real recordings (bench/analysis.py): 16 kHz costs 0.6x the CPU of 48 kHz, hiss
    # cases within 150 ms at every rate.
    sample_rate: int = setting(
        16000,
        doc="analysis reads every k-th sample, the smallest k that brings the rate to this or under",
        check=between(8000, 48000),
    )
    # Short windows: one that is silent throughout is lengthened/widened until it finds sound.
    head_seconds: float = setting(8.0, doc="length of the window decoded at the start", check=at_least(1.0))
    tail_seconds: float = setting(
        15.0, doc="length of the window decoded at the end (widened while it is all silence)", check=at_least(1.0)
    )
    max_cue_in_seconds: float = setting(
        3.0, doc="a cue-in later than this and than the fraction below is rejected", check=at_least(0.0)
    )
    max_cue_in_fraction: float = setting(
        0.05,
        doc="a cue-in later than this fraction of the track and max_cue_in_seconds is rejected",
        check=between(0.0, 0.5),
    )
    timeout_seconds: float = setting(
        120.0, doc="a track's analysis (or an ffmpeg run) taking longer is stopped", check=at_least(1.0)
    )


@dataclass(frozen=True)
class FetchConfig:
    mode: Literal["video", "audio"] = setting("video", doc="video for a box with a screen, audio = audio only")
    max_height: int = setting(720, doc="highest video resolution fetched", check=at_least(144))
    video_codecs: tuple[Codec, ...] = setting(
        (), doc="video codecs fetched, best first (avc1, hevc, vp9, av1); empty = what the box decodes well"
    )
    socket_timeout_seconds: float = setting(20.0, doc="network read timeout", check=at_least(1.0))
    attempts: int = setting(4, doc="tries for a transient network error", check=at_least(1))
    retry_base_seconds: float = setting(5.0, doc="first backoff; doubles each retry (with jitter)", check=at_least(0.0))
    max_file_bytes: int = setting(1_000_000_000, doc="refuse media larger than this", check=at_least(1_000_000))
    attempt_limit_seconds: float = setting(
        1800.0, doc="one download attempt (its yt-dlp worker process) running longer is killed and counts as failed",
        check=at_least(10.0),
    )
    # A server that sends just enough to keep the socket alive (a slow trickle) would otherwise hold one fetch,
    # and a download worker slot, for attempts x attempt_limit_seconds (2 hours). 45 minutes: one whole slow attempt
    # (a 100 MB video at 1 Mbit/s takes ~15) and retries after it.
    fetch_limit_seconds: float = setting(
        2700.0, doc="one fetch, every attempt and the pauses between them, gives up after this (tried again later)",
        check=at_least(10.0),
    )
    # YouTube's player challenges need a JavaScript runtime since yt-dlp 2025.11 (yt-dlp-ejs holds the scripts).
    js_runtime: Literal["deno", "node", "bun", "quickjs"] = setting("deno", doc="JavaScript runtime yt-dlp uses")
    js_runtime_path: str = setting("", doc="its executable; empty = the one installed with the app, else PATH's")
    # A patron's URL must not reach inside the venue's network (the status page, the router, 169.254.169.254).
    allowed_hosts: tuple[str, ...] = setting(
        (), doc="hosts (names or IPs) media may come from although internal (loopback, private, link-local)"
    )


@dataclass(frozen=True)
class CacheConfig:
    max_bytes: int = setting(
        8_000_000_000, doc="cached media above this is evicted, least recently played first", check=at_least(1)
    )
    prefetch_count: int = setting(3, doc="upcoming queue entries fetched ahead", check=at_least(0))
    retry_failed_seconds: float = setting(
        300.0, doc="a fetch that failed for network reasons is not tried again sooner", check=at_least(0.0)
    )
    slow_fetch_seconds: float = setting(
        10.0, doc="a fetch running longer stops holding up the entries after it: they are fetched beside it",
        check=at_least(0.1),
    )
    retry_refused_max_seconds: float = setting(
        10800.0,
        doc="YouTube refusing this box (403, bot check): the pause doubles per refusal up to this",
        check=at_least(0.0),
    )
