"""YouTube's player challenges need a JavaScript runtime: the box's own install has one, and yt-dlp gets it
even under systemd's PATH (which never holds the virtualenv's bin directory). No network: yt-dlp's debug
header says which runtimes it found and whether it supports them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from djamms_edge.edge.media.config import FetchConfig
from djamms_edge.edge.media.fetcher import SYSTEMD_PATH, js_runtime_path
from djamms_edge.edge.media.ytdlp import ytdlp_environment

# yt-dlp built with the daemon's own options (ytdlp_options), verbose: it prints its debug header and exits.
RUN_WITH_DAEMON_OPTIONS = """
import yt_dlp
from djamms_edge.edge.media.config import FetchConfig
from djamms_edge.edge.media.fetcher import ytdlp_options
options = {**ytdlp_options(FetchConfig()), "verbose": True, "quiet": False}
with yt_dlp.YoutubeDL(options):
    pass
"""


def systemd_like_env(home: Path) -> dict[str, str]:
    """What a system unit's process gets: systemd's PATH, no VIRTUAL_ENV, nothing of this shell's."""
    return {"PATH": SYSTEMD_PATH, "HOME": str(home), "LANG": "C.UTF-8"}


def test_the_real_ytdlp_reports_a_supported_runtime_with_the_daemons_options(tmp_path: Path) -> None:
    assert shutil.which("deno", path=SYSTEMD_PATH) is None, "deno on systemd's PATH would hide the point of this"
    run = subprocess.run([sys.executable, "-c", RUN_WITH_DAEMON_OPTIONS], env=systemd_like_env(tmp_path),
                         cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True)
    line = re.search(r"\[debug\] JS runtimes: (.*)", run.stderr)
    assert line is not None, run.stderr
    assert re.fullmatch(r"deno-\d+\.\d+\.\d+", line.group(1)), line.group(1)  # not "none", not "(unsupported)"


def test_the_ytdlp_program_reports_it_too(tmp_path: Path) -> None:
    """The `yt-dlp` program of our environment, given the runtime the daemon hands over, on systemd's PATH."""
    program = Path(sysconfig.get_path("scripts")) / "yt-dlp"
    run = subprocess.run(
        [str(program), "-v", "--ignore-config", "--js-runtimes", f"deno:{js_runtime_path(FetchConfig())}"],
        env=systemd_like_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    line = re.search(r"\[debug\] JS runtimes: (.*)", run.stderr)
    assert line is not None, run.stderr
    assert re.fullmatch(r"deno-\d+\.\d+\.\d+", line.group(1)), line.group(1)


def test_the_runtime_is_the_one_installed_with_the_app() -> None:
    path = js_runtime_path(FetchConfig())
    assert path is not None
    assert Path(path).parent == Path(sysconfig.get_path("scripts"))  # the deno wheel's binary, in our venv
    environment = ytdlp_environment(FetchConfig())
    assert environment.runtime.supported and environment.runtime.version
    assert environment.ejs_version is not None and environment.ejs_wanted is not None


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (FetchConfig(js_runtime_path="/opt/node-22/bin/node", js_runtime="node"), "/opt/node-22/bin/node"),
        (FetchConfig(js_runtime="bun"), None),  # not installed here, not beside the interpreter
    ],
)
def test_a_configured_path_wins_and_a_missing_runtime_is_none(config: FetchConfig, expected: str | None) -> None:
    assert js_runtime_path(config) == expected
