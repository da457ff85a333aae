"""The unit files pass systemd's own checks, are hardened, and agree with the config and the updater.

systemd is not running in CI containers; ``systemd-analyze verify`` and ``security --offline`` read
unit files without a manager, and ``systemd-sysusers``/``systemd-tmpfiles`` work on a ``--root``.
What they cannot prove (that the daemon actually starts under systemd, gets its devices, and is
restarted by the watchdog) needs a booted machine.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from djamms_edge.config import Config
from djamms_edge.edge import cli as edge_cli
from djamms_edge.edge.status.config import StatusConfig
from djamms_edge.edge.ytdlp_update import ACTIVE_LINK, side_directory
from djamms_edge.hub import cli as hub_cli
from tests.systemd.tools import run, verify_in_root

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd"
SERVICES = sorted(p.name for p in UNITS.glob("*.service"))
ALL_UNITS = sorted(p.name for p in UNITS.iterdir() if p.suffix in {".service", ".timer", ".path"})
VENV_BIN = REPO / ".venv" / "bin"


def unit_settings(name: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment; keys repeat in unit files, so no dict."""
    section, out = "", []
    for line in (UNITS / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        else:
            key, _, value = line.partition("=")
            out.append((section, key, value))
    return out


def setting(name: str, key: str) -> str:
    (value,) = [v for _, k, v in unit_settings(name) if k == key]
    return value


def unit_root(tmp_path: Path, *, with_programs: bool = True) -> Path:
    """A filesystem root holding our units and (unless told not to) the programs they run."""
    root = tmp_path / "root"
    (root / "lib/systemd/system").mkdir(parents=True)
    for name in ALL_UNITS:
        shutil.copy(UNITS / name, root / "lib/systemd/system" / name)
    if with_programs:
        (root / "opt/djamms/venv/bin").mkdir(parents=True)
        for program in ("djamms-edge", "djamms-hub"):  # the real entry points of this checkout
            shutil.copy(VENV_BIN / program, root / "opt/djamms/venv/bin" / program)
    return root


def test_systemd_analyze_verify_passes_for_every_unit(tmp_path: Path) -> None:
    result = verify_in_root(unit_root(tmp_path), ALL_UNITS)
    assert (result.returncode, result.stderr) == (0, "")


def test_verify_would_catch_a_missing_program(tmp_path: Path) -> None:
    # Guards the test above against passing vacuously: a unit whose ExecStart is missing fails.
    result = verify_in_root(unit_root(tmp_path, with_programs=False), ["djamms-edge.service"])
    assert result.returncode != 0
    assert "/opt/djamms/venv/bin/djamms-edge is not executable" in result.stderr


def exposure(unit: str) -> float:
    result = run("systemd-analyze", "security", "--offline=true", "--no-pager", UNITS / unit)
    assert result.returncode == 0, result.stderr
    match = re.search(rf"Overall exposure level for {re.escape(unit)}: (\d+\.\d+)", result.stdout)
    assert match, result.stdout[-500:]
    return float(match.group(1))


def test_edge_unit_security_exposure_is_at_most_2() -> None:
    assert exposure("djamms-edge.service") <= 2.0


@pytest.mark.parametrize("unit", [s for s in SERVICES if s != "djamms-edge.service"])
def test_every_other_service_is_hardened_too(unit: str) -> None:
    assert exposure(unit) <= 2.0


@pytest.mark.parametrize(
    ("unit", "program", "parser"),
    [
        ("djamms-edge.service", "djamms-edge", edge_cli.build_parser),
        ("djamms-edge-ytdlp-update.service", "djamms-edge", edge_cli.build_parser),
        ("djamms-hub.service", "djamms-hub", hub_cli.build_parser),
        ("djamms-hub-backup.service", "djamms-hub", hub_cli.build_parser),
    ],
)
def test_exec_start_is_a_command_the_program_has(
    unit: str, program: str, parser: Callable[[], argparse.ArgumentParser]
) -> None:
    path, *args = shlex.split(setting(unit, "ExecStart"))
    assert path == f"/opt/djamms/venv/bin/{program}"
    parsed = parser().parse_args(args)  # exits (fails the test) on an unknown command or option
    assert parsed.config == Path("/etc/djamms/config.toml")


def test_edge_unit_is_a_notify_service_with_a_watchdog() -> None:
    unit = "djamms-edge.service"
    assert setting(unit, "Type") == "notify"
    assert setting(unit, "NotifyAccess") == "main"  # ffmpeg/yt-dlp children inherit NOTIFY_SOCKET
    assert setting(unit, "Restart") == "always"
    assert int(setting(unit, "WatchdogSec").removesuffix("s")) >= 10
    assert setting(unit, "User") == "djamms-edge"
    assert set(setting(unit, "SupplementaryGroups").split()) == {"audio", "video", "render"}


def test_edge_unit_bounds_file_descriptors_with_room_for_the_status_page() -> None:
    soft, _, hard = setting("djamms-edge.service", "LimitNOFILE").partition(":")
    assert int(soft) == int(hard or soft)  # one number: the daemon cannot raise it
    # Every status-page connection is a descriptor; the player, SQLite, yt-dlp and ffmpeg need their own.
    assert int(soft) >= 8 * StatusConfig().max_connections


def test_units_use_the_directories_the_config_and_updater_expect() -> None:
    defaults = Config().edge
    edge = "djamms-edge.service"
    assert Path("/var/lib", setting(edge, "StateDirectory")) == defaults.state_dir
    assert Path("/var/cache", setting(edge, "CacheDirectory")) == defaults.cache_dir
    # The daemon imports yt-dlp from where the updater activates releases.
    active = side_directory(defaults.state_dir) / ACTIVE_LINK
    assert setting(edge, "Environment") == f"PYTHONPATH={active}"
    assert setting("djamms-edge-ytdlp-restart.path", "PathChanged") == str(active)
    update = "djamms-edge-ytdlp-update.service"
    assert setting(update, "User") == setting(edge, "User")
    assert setting(update, "StateDirectory") == setting(edge, "StateDirectory")
    assert "update-ytdlp" in setting(update, "ExecStart").split()
    hub_store = Config().hub.store.url.removeprefix("sqlite://")
    assert Path(hub_store).parent == Path("/var/lib", setting("djamms-hub.service", "StateDirectory"))


def test_sysusers_and_tmpfiles_create_the_service_user_and_its_directories(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    created = run("systemd-sysusers", f"--root={root}", UNITS / "sysusers.d/djamms.conf")
    assert created.returncode == 0, created.stderr
    users = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
    assert set(users) == {"djamms-edge", "djamms-hub"}
    assert users["djamms-edge"][6] == "/usr/sbin/nologin"
    uid = int(users["djamms-edge"][2])
    assert uid < 1000  # a system user

    made = run("systemd-tmpfiles", f"--root={root}", "--create", UNITS / "tmpfiles.d/djamms-edge.conf")
    assert made.returncode == 0, made.stderr
    for directory in ("var/lib/djamms-edge", "var/lib/djamms-edge/yt-dlp", "var/cache/djamms-edge"):
        info = (root / directory).stat()
        assert (info.st_uid, info.st_mode & 0o777) == (uid, 0o750), directory
