"""Damage to SQLite files as an SD card does it, for the self-healing tests: a garbage header, random bytes
over a page in the middle, a file cut short. Deterministic (seeded), so a failure can be reproduced."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

PAGE = 4096


def _pages(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # what the WAL holds goes into the file we damage
    return path.stat().st_size // PAGE


def garbage_header(path: Path) -> None:
    with path.open("r+b") as f:
        f.write(random.Random(1).randbytes(100))  # the 100-byte database header


def random_middle(path: Path) -> None:
    """One whole page in the middle of the file overwritten with random bytes (the header stays intact)."""
    pages = _pages(path)
    assert pages >= 3, f"{path} is too small to damage in the middle"
    with path.open("r+b") as f:
        f.seek((pages // 2) * PAGE)
        f.write(random.Random(2).randbytes(PAGE))


def cut_short(path: Path) -> None:
    pages = _pages(path)
    with path.open("r+b") as f:
        f.truncate((pages // 2) * PAGE + 100)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "garbage-header": garbage_header, "random-middle": random_middle, "cut-short": cut_short,
}
