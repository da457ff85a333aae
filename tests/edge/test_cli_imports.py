"""What each ``djamms-edge`` command imports: a one-file ``analyze`` must start fast (issue 14), so it never
loads the hub, the daemon's libraries (aiohttp, libmpv) or yt-dlp, nor numpy (the analysis computes in
libavfilter; numpy's import alone was a third of the call's start-up), nor asyncio for a local file.
Checked on the real console script with ``python -X importtime``, which lists every module a process
imports, also those imported inside functions while it runs. The time itself is measured in
bench/cli_start.py, not here.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from djamms_edge.edge.media.synth import SynthTrack, render, silence, tone

EDGE = str(Path(sys.executable).with_name("djamms-edge"))
DAEMON_LIBRARIES = ("aiohttp", "mpv", "yt_dlp")


def imported_by(*words: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``djamms-edge WORDS…``; its result and every module it imported."""
    env = {k: v for k, v in os.environ.items() if k != "DJAMMS_CONFIG"}
    proc = subprocess.run([sys.executable, "-X", "importtime", EDGE, *words],
                          capture_output=True, text=True, timeout=120, env=env, check=False)
    modules = {line.split("|")[2].strip() for line in proc.stderr.splitlines()
               if line.startswith("import time:") and "self [us]" not in line}
    return proc, modules


def among(modules: set[str], *packages: str) -> set[str]:
    return {m for m in modules for p in packages if m == p or m.startswith(p + ".")}


@pytest.fixture(scope="module")
def track(tmp_path_factory: pytest.TempPathFactory) -> Path:
    made = asyncio.run(render(SynthTrack((silence(0.5), tone(3.0), silence(1.0))), tmp_path_factory.mktemp("cli"),
                              "short", ("flac",), sample_rate=24000))
    return made["flac"]


def test_analyze_imports_neither_the_hub_nor_the_daemons_libraries(track: Path) -> None:
    proc, modules = imported_by("analyze", str(track))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "start 0.500s" in proc.stdout  # it really analysed the file
    assert among(modules, "djamms_edge.hub", *DAEMON_LIBRARIES, "numpy") == set()
    # A local file is analysed without an event loop: asyncio (and the ssl it loads) is ~0.045 s of a start.
    assert among(modules, "asyncio", "ssl", "concurrent") == set()
    assert among(modules, "djamms_edge.edge.daemon", "djamms_edge.edge.sync.lease", "djamms_edge.config") == set()


@pytest.mark.parametrize("command", ["check-config", "dump-config"])
def test_config_commands_import_no_command_of_the_daemon(command: str) -> None:
    proc, modules = imported_by(command)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "djamms_edge.hub.config" in modules  # they check (and show) the whole file, both sections
    assert among(modules, *DAEMON_LIBRARIES, "djamms_edge.edge.daemon", "djamms_edge.edge.doctor") == set()


def test_the_check_sees_what_the_daemon_imports() -> None:
    # The same check on `run` (its parser only): the libraries are found, so an empty set above means something.
    proc, modules = imported_by("run", "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert among(modules, "aiohttp", "mpv") >= {"aiohttp", "mpv"}
    # sqlite-utils (which imports numpy, a test dependency, wherever it is installed) only when a migration is
    # pending: tests/edge/test_daemon_imports.py.
    assert among(modules, "sqlite_utils", "numpy") == set()


def test_analyze_still_refuses_a_mistake_anywhere_in_the_edge_section(track: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[edge.analysis]\nsilence_treshold_db = -50.0\n[edge.player]\nvolume = "loud"\n[edeg]\n')
    proc = subprocess.run([EDGE, "analyze", "--config", str(config), str(track)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "edge.analysis.silence_treshold_db: unknown key (did you mean 'silence_threshold_db'?)" in proc.stderr
    assert "edge.player.volume: expected a number" in proc.stderr
    assert "edeg: unknown key (did you mean 'edge'?)" in proc.stderr
    assert proc.stdout == ""
