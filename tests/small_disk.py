"""A real small file system for tests of a full disk: tmpfs mounted where a test wants it (root only; skipped with
the reason otherwise), filled to the last byte as an SD card fills (writes get ENOSPC, SQLite SQLITE_FULL)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (as mount's size= says it: "16m") mounted at ``path``, unmounted afterwards."""
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if os.geteuid() != 0 or mount is None or umount is None:
        pytest.skip("a small real file system (mount -t tmpfs) needs root and mount(8)")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small real file system here (tmpfs): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run([umount, "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; the filler file's path (delete it to free the space)."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:
        for chunk in (b"\0" * (1 << 16), b"\0"):
            with contextlib.suppress(OSError):
                while True:
                    out.write(chunk)
    try:
        (disk / "probe").write_bytes(b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    else:
        raise AssertionError(f"{disk} is not full")
    return filler
