"""Helpers for tests that run systemd's and dpkg's command-line tools on files and scratch roots."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def run(*argv: str | Path, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, env=env, check=False)


def verify_in_root(root: Path, units: list[str]) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` of ``units`` inside ``root`` (whose /lib/systemd/system holds them).

    verify needs the distribution's units (sysinit.target, ...) and checks every ExecStart= program
    exists, so those come from this machine; our units' own programs must already be in the root.
    """
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True, dirs_exist_ok=True)
    (root / "usr/bin").mkdir(parents=True, exist_ok=True)
    shutil.copy("/usr/bin/systemctl", root / "usr/bin/systemctl")  # djamms-edge-ytdlp-restart.service runs it
    return run("systemd-analyze", "verify", f"--root={root}", *units)
