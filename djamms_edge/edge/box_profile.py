"""What this box's hardware decodes, so it fetches video it can play and tells mpv how to decode it.

A music video the box cannot decode fast enough stutters on the venue's TV, so the format choice
and mpv's ``hwdec`` follow the hardware:

| profile    | hardware video decoding          | codec preference (fetch)      | mpv hwdec      |
| ---------- | -------------------------------- | ----------------------------- | -------------- |
| pi4        | H.264 and HEVC; no AV1, no VP9   | H.264, HEVC, VP9; AV1 last    | v4l2m2m-copy   |
| pi5        | HEVC only (H.264 is software,    | HEVC, H.264, VP9; AV1 last    | drm-copy       |
|            | which its CPU does fine)         |                               |                |
| x86-vaapi  | whatever the GPU has (VA-API)    | H.264, VP9, AV1               | vaapi          |
| x86        | none: the CPU decodes            | H.264, VP9, AV1               | no             |
| generic    | unknown                          | H.264, VP9, AV1               | auto-safe      |

A codec missing from a profile's list (AV1 on a Pi: software AV1 is too slow there) is fetched only when
a video offers nothing else. ``[edge] box_profile`` chooses a profile by name instead of detecting it;
``[edge.fetch] video_codecs`` and ``[edge.player] hwdec`` override each half of it.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from djamms_edge.edge.media.config import Codec

if TYPE_CHECKING:
    from djamms_edge.config import Config

# Where the device tree names the board: /sys first (systemd's ProcSubset=pid hides /proc/device-tree).
MODEL_FILES = (Path("/sys/firmware/devicetree/base/model"), Path("/proc/device-tree/model"))
DRI = Path("/dev/dri")


@dataclass(frozen=True, slots=True)
class BoxProfile:
    name: str
    codecs: tuple[Codec, ...]  # the ones it plays well, best first; any other only when nothing else is offered
    hwdec: str  # mpv's hwdec
    why: str = ""  # what the detection saw


PROFILES: dict[str, BoxProfile] = {
    "pi4": BoxProfile("pi4", ("avc1", "hevc", "vp9"), "v4l2m2m-copy"),
    "pi5": BoxProfile("pi5", ("hevc", "avc1", "vp9"), "drm-copy"),
    "x86-vaapi": BoxProfile("x86-vaapi", ("avc1", "vp9", "av1"), "vaapi"),
    "x86": BoxProfile("x86", ("avc1", "vp9", "av1"), "no"),
    "generic": BoxProfile("generic", ("avc1", "vp9", "av1"), "auto-safe"),
}


def board_model(files: Sequence[Path] = MODEL_FILES) -> str:
    """The device tree's model string ("Raspberry Pi 5 Model B Rev 1.0"), or "" off a device-tree board."""
    for path in files:
        try:
            return path.read_bytes().rstrip(b"\x00").decode(errors="replace").strip()
        except OSError:
            continue
    return ""


def detect(model: str, machine: str, render_nodes: Sequence[str]) -> BoxProfile:
    """Pure: the profile for a board model, a CPU architecture and the DRM render nodes present."""
    if model.startswith("Raspberry Pi 5") or "Compute Module 5" in model:
        return replace(PROFILES["pi5"], why=model)
    if model.startswith(("Raspberry Pi 4", "Raspberry Pi 400")) or "Compute Module 4" in model:
        return replace(PROFILES["pi4"], why=model)
    if machine.lower() in ("x86_64", "amd64", "i686", "i386"):
        if render_nodes:
            return replace(PROFILES["x86-vaapi"], why=f"{machine} with {', '.join(render_nodes)}")
        return replace(PROFILES["x86"], why=f"{machine} without a DRM render node")
    return replace(PROFILES["generic"], why=model or machine or "unknown hardware")


def this_box(name: str = "auto") -> BoxProfile:
    """The configured profile, or the detected one for ``auto``."""
    if name != "auto":
        return replace(PROFILES[name], why="set in config")
    try:
        nodes = sorted(p.name for p in DRI.glob("renderD*"))
    except OSError:
        nodes = []
    return detect(board_model(), platform.machine(), nodes)


def with_box_profile(config: Config, profile: BoxProfile) -> Config:
    """``config`` with what it leaves to the profile filled in: the codec preference and mpv's hwdec."""
    edge = config.edge
    fetch = edge.fetch if edge.fetch.video_codecs else replace(edge.fetch, video_codecs=profile.codecs)
    player = edge.player if edge.player.hwdec else replace(edge.player, hwdec=profile.hwdec)
    return replace(config, edge=replace(edge, fetch=fetch, player=player))
