"""QR codes of a venue's patron page (for table cards, the poster and the TV), drawn by segno."""

from __future__ import annotations

import io
from typing import Literal

import segno

QrFormat = Literal["svg", "png"]


def patron_url(public_url: str, venue_id: str) -> str:
    return f"{public_url.rstrip('/')}/v/{venue_id}"


def qr_image(url: str, kind: QrFormat, *, scale: int = 10, border: int = 4) -> bytes:
    """``url`` as a QR code; error correction M survives a sticky table card. ``border`` is in modules
    (4 is the quiet zone the standard asks for)."""
    code = segno.make(url, error="m", boost_error=False)
    out = io.BytesIO()
    if kind == "svg":
        code.save(out, kind="svg", scale=scale, border=border, xmldecl=False, svgclass=None, lineclass=None,
                  title=url)
    else:
        code.save(out, kind="png", scale=scale, border=border)
    return out.getvalue()
