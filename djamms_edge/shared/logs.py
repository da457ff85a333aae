"""Logging setup: journald with structured fields under systemd, plain stderr otherwise."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

from djamms_edge.shared.systemd_notify import journal_handler


def running_under_systemd() -> bool:
    # systemd sets JOURNAL_STREAM when stderr is connected to the journal.
    return bool(os.environ.get("JOURNAL_STREAM")) or bool(os.environ.get("INVOCATION_ID"))


def setup_logging(level: str = "INFO", *, program: str, journal_fields: Mapping[str, str] | None = None) -> None:
    """Log to journald under systemd (``journal_fields`` such as VENUE/DEVICE go on every entry), else stderr."""
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level.upper())
    handler: logging.Handler
    if running_under_systemd():
        handler = journal_handler(program, journal_fields)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root.addHandler(handler)
    # aiohttp's access log is one line per request: useful when debugging, noise on a venue box.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
