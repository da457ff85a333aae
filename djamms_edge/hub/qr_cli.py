"""``djamms-hub venue qr VENUE``: the QR code of a venue's patron page, as SVG or PNG, for table cards.

The poster to print is the hub's page ``/v/VENUE/poster``; the same image is served at ``/v/VENUE/qr.svg``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from djamms_edge.hub.qr import QrFormat, patron_url, qr_image
from djamms_edge.hub.store import UnsupportedStoreUrl, store_from_url
from djamms_edge.hub.store.base import StoreUnavailable
from djamms_edge.hub.web_input import ID_PATTERN
from djamms_edge.shared.cli import add_config_option, load_or_exit


def add_commands(venue: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``qr`` leaf of the ``venue`` command group."""
    qr = venue.add_parser("qr", help="write the QR code of a venue's patron page (SVG or PNG)")
    add_config_option(qr)
    qr.add_argument("venue_id", metavar="VENUE", help="venue id")
    qr.add_argument("--format", choices=("svg", "png"), default="svg", help="image format (default svg)")
    qr.add_argument("--output", "-o", type=Path, help="file to write (default: standard output)")
    qr.add_argument("--scale", type=int, default=10, help="pixels per module (default 10)")


async def _venue_exists(url: str, venue_id: str) -> bool:
    store = store_from_url(url, retain_changes=1)  # reads one venue row; the change log is not touched
    await store.open()
    try:
        return await store.get_venue(venue_id) is not None
    finally:
        await store.close()


def run(args: argparse.Namespace) -> int:
    config = load_or_exit(args.config).hub
    if not ID_PATTERN.fullmatch(args.venue_id):
        print(f"djamms-hub: {args.venue_id!r} is not a valid venue id", file=sys.stderr)
        return 2
    if not 1 <= args.scale <= 100:
        print("djamms-hub: --scale must be between 1 and 100", file=sys.stderr)
        return 2
    try:
        if not asyncio.run(_venue_exists(config.store.url, args.venue_id)):
            print(f"djamms-hub: no venue {args.venue_id!r} in {config.store.url}", file=sys.stderr)
            return 1
    except (UnsupportedStoreUrl, StoreUnavailable, OSError) as exc:
        print(f"djamms-hub: cannot read the store: {exc}", file=sys.stderr)
        return 1
    url = patron_url(config.public_url, args.venue_id)
    kind: QrFormat = "png" if args.format == "png" else "svg"
    image = qr_image(url, kind, scale=args.scale)
    if args.output is None:
        sys.stdout.buffer.write(image)
        sys.stdout.flush()
    else:
        args.output.write_bytes(image)
    print(f"QR code for {url}", file=sys.stderr)
    return 0
