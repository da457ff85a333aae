"""The venue's request QR code on the TV: where it goes, and the ASS vector drawing libmpv's OSD renders.

Pure (segno draws the matrix; no mpv, no files), so the picture can be checked without a screen.

Where a bar wants it: with nothing playing the TV is otherwise black, so the code fills the middle of the
screen with a line saying what it is for; while a song plays it sits small in the bottom-right corner for
the song's first seconds only — the moment people look up at a new video — and then leaves the video alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from djamms_edge.edge.player.config import PlayerConfig

# The overlay's own coordinate space; mpv scales it to the screen (16:9, as a TV is).
CANVAS_W, CANVAS_H = 1920, 1080
_QUIET_ZONE = 4  # modules of white around the code, as the standard asks (phones rely on it)


class QrPlacement(StrEnum):
    SCREEN = "screen"  # nothing plays: large, centred, with a caption
    CORNER = "corner"  # a song has just started: small, bottom right


@dataclass(frozen=True, slots=True)
class RequestQr:
    """What to show: the patron page's URL, and how long the corner code stays at each song's start."""

    url: str
    song_start_s: float = 15.0


def patron_url(hub_url: str, venue_id: str) -> str:
    """The venue's patron page on the hub (the same address the hub's own QR codes carry)."""
    return f"{hub_url.rstrip('/')}/v/{venue_id}"


def configured(config: PlayerConfig, hub_url: str, venue_id: str) -> RequestQr | None:
    """The code ``[edge.player]`` asks for, or None (off, or on without a hub and without an address to show)."""
    if not config.show_request_qr:
        return None
    url = config.request_qr_url or (patron_url(hub_url, venue_id) if hub_url else "")
    return RequestQr(url, config.request_qr_song_start_s) if url else None


def _ass_text(text: str) -> str:
    # ASS reads {...} as override tags and \ as an escape; neither may come from a URL.
    return text.replace("\\", "\\\\").replace("{", "\\{").replace("}", "\\}")


def _modules_path(rows: list[list[bool]], module: float) -> str:
    """The dark modules as one ASS drawing path, each row's runs merged into one rectangle."""
    parts: list[str] = []
    for y, row in enumerate(rows):
        x = 0
        while x < len(row):
            if not row[x]:
                x += 1
                continue
            run = x
            while run < len(row) and row[run]:
                run += 1
            left, right, top, bottom = (round(v * module, 1) for v in (x, run, y, y + 1))
            parts.append(f"m {left:g} {top:g} l {right:g} {top:g} {right:g} {bottom:g} {left:g} {bottom:g}")
            x = run
    return " ".join(parts)


def ass_events(url: str, placement: QrPlacement) -> str:
    """ASS events (one per line) drawing the code for ``url`` on a CANVAS_W x CANVAS_H canvas: a white
    square (the quiet zone), the black modules on it, and on the full screen a caption under it."""
    import segno  # here: only a box that shows the code needs it (~0.8 MiB of the daemon's RSS)

    side = 640 if placement is QrPlacement.SCREEN else 280
    # Error correction M, as the hub's printed codes: survives a TV's glare and a phone held at an angle.
    code = segno.make(url, error="m", boost_error=False)
    rows = [[bool(dark) for dark in row] for row in code.matrix_iter(scale=1, border=_QUIET_ZONE)]
    module = side / len(rows)
    if placement is QrPlacement.SCREEN:
        left, top = (CANVAS_W - side) / 2, (CANVAS_H - side) / 2 - 60
    else:
        left, top = CANVAS_W - side - 48, CANVAS_H - side - 48
    path = _modules_path(rows, module)

    def shape(colour: str, drawing: str) -> str:
        return rf"{{\an7\pos({left:g},{top:g})\bord0\shad0\blur0\1c&H{colour}&\p1}}{drawing}{{\p0}}"

    events = [shape("FFFFFF", f"m 0 0 l {side:g} 0 {side:g} {side:g} 0 {side:g}"), shape("000000", path)]
    if placement is QrPlacement.SCREEN:
        caption = rf"Scan to request a song\N{{\fs36}}{_ass_text(url)}"
        events.append(rf"{{\an8\pos({CANVAS_W / 2:g},{top + side + 36:g})\fs56\bord3\1c&HFFFFFF&}}{caption}")
    return "\n".join(events)
