"""The Debian package: built by packaging/build-deb.sh, checked by dpkg-deb and lintian, then installed
with the real dpkg twice over:

- into an empty scratch root (``dpkg --root``, maintainer scripts run from outside with $DPKG_ROOT):
  install, reinstall, remove and purge, proving the files, conffile handling, system users and
  directories, the virtualenv built offline from the shipped wheels alone, unit enablement, and what
  remove and purge keep or delete;
- into a chroot of this Debian 12 system (its /usr behind an overlay, so nothing on the host
  changes): dependencies checked by dpkg against a real Debian package database (no --force-depends),
  maintainer scripts on their production path, and the start decision: ``systemctl restart`` only
  when ``djamms-edge check-config`` accepts /etc/djamms/config.toml.

What neither proves: apt fetching the dependencies, and the units actually running under systemd
(none runs here; ``systemctl`` in the chroot is a recorder). Installing needs root (the chroot also
CAP_SYS_ADMIN for its private mounts), so those tests are skipped for other users; CI runs as root.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.systemd.tools import run, verify_in_root

# The first test here builds the package (a session fixture); with no wheels cached from an earlier run
# (a fresh clone, as in CI) that downloads every wheel, deno's 42 MB among them, and compiles systemd-python:
# more than the suite's 300 s limit for one test on a loaded 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="installing a package needs root (CI runs as root)")

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]


@pytest.fixture(scope="session")
def deb(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    scratch = tmp_path_factory.mktemp("deb")
    # Wheels are kept in pytest's cache between sessions (when it is on): a warm wheelhouse builds without PyPI.
    cache = getattr(request.config, "cache", None)
    wheelhouse = Path(cache.mkdir("deb-wheelhouse")) if cache is not None else scratch / "wheelhouse"
    env = {**os.environ, "WHEELHOUSE": str(wheelhouse), "DEB_BUILD_DIR": str(scratch / "build"),
           "DEB_OUT_DIR": str(scratch / "dist")}
    built = run(REPO / "packaging/build-deb.sh", env=env, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    arch = run("dpkg", "--print-architecture").stdout.strip()
    package = scratch / "dist" / f"djamms-edge_{VERSION}_{arch}.deb"
    assert built.stdout.strip() == str(package)
    return package


def control_fields(deb: Path) -> dict[str, str]:
    text = run("dpkg-deb", "-f", deb).stdout
    return dict(re.findall(r"^(\S+): (.*)$", text, re.MULTILINE))


def contents(deb: Path) -> dict[str, str]:
    """path -> mode string, from dpkg-deb -c."""
    out = {}
    for line in run("dpkg-deb", "-c", deb).stdout.splitlines():
        parts = line.split()
        out[parts[5].removeprefix(".")] = parts[0]
    return out


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def test_control_metadata(deb: Path) -> None:
    fields = control_fields(deb)
    assert (fields["Package"], fields["Version"]) == ("djamms-edge", VERSION)
    depends = [d.strip() for d in fields["Depends"].split(",")]
    for needed in ("python3 (>= 3.11)", "python3 (<< 3.12)", "python3-venv", "ffmpeg", "libmpv2", "systemd"):
        assert needed in depends
    # dpkg keeps the venue's edits to these on upgrade and asks before replacing them.
    assert run("dpkg-deb", "-I", deb, "conffiles").stdout.split() == ["/etc/djamms/config.toml"]


def test_ships_units_config_and_a_wheel_for_every_runtime_dependency(deb: Path) -> None:
    files = contents(deb)
    for unit in sorted(p.name for p in (REPO / "systemd").iterdir() if p.is_file()):
        assert f"/lib/systemd/system/{unit}" in files
    assert "/usr/lib/sysusers.d/djamms.conf" in files
    assert "/usr/lib/tmpfiles.d/djamms-edge.conf" in files
    assert "/etc/djamms/config.toml" in files
    wheels = {_normalise(Path(p).name.split("-")[0]) for p in files if p.endswith(".whl")}
    declared = [*PYPROJECT["project"]["dependencies"], *PYPROJECT["project"]["optional-dependencies"]["systemd"]]
    required = {_normalise(re.split(r"[<>=!~ \[]", d, maxsplit=1)[0]) for d in declared}
    assert required | {"djamms_edge"} <= wheels
    # The program itself is built by postinst, not shipped: nothing under /opt in the archive.
    assert not [p for p in files if p.startswith("/opt")]


def test_lintian_finds_no_errors(deb: Path) -> None:
    result = run("lintian", "--tag-display-limit", "0", deb, timeout=300)
    errors = [line for line in result.stdout.splitlines() if line.startswith("E:")]
    assert errors == []
    assert result.returncode == 0, result.stdout + result.stderr


@dataclass
class ScratchRoot:
    path: Path
    deb: Path

    def dpkg(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        # No pip configuration from this machine: the install must work from the shipped wheels alone.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {"PIP_CONFIG_FILE": os.devnull}
        return run("dpkg", f"--root={self.path}", "--force-script-chrootless", "--force-depends",
                    f"--log={self.path / 'dpkg.log'}", *args, env=env)

    def __truediv__(self, relative: str) -> Path:
        return self.path / relative.lstrip("/")

    def djamms_edge(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The installed entry point, run from outside the root by the venv's interpreter.

        Its shebang names /opt/djamms/venv/bin/python as seen inside the root, so it is handed to
        that interpreter here; pyvenv.cfg next to it makes the scratch venv's site-packages the ones used.
        """
        venv = self / "opt/djamms/venv"
        env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "DJAMMS_CONFIG"}}
        return run(venv / "bin/python", venv / "bin/djamms-edge", *args, env=env)

    def status(self) -> str:
        return run("dpkg-query", f"--root={self.path}", "-W", "-f=${Status}", "djamms-edge").stdout

    def ids(self, database: str, name: str) -> int:
        for line in (self / f"etc/{database}").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == name:
                return int(fields[2])
        raise AssertionError(f"{name} not in {database}")


@pytest.fixture
def scratch(tmp_path: Path, deb: Path) -> Iterator[ScratchRoot]:
    root = tmp_path / "root"
    for directory in ("var/lib/dpkg/updates", "var/lib/dpkg/info", "etc"):
        (root / directory).mkdir(parents=True)
    for name in ("status", "available"):
        (root / "var/lib/dpkg" / name).touch()
    yield ScratchRoot(root, deb)


@needs_root
def test_install_reinstall_remove_purge(scratch: ScratchRoot) -> None:
    # --- install ---
    installed = scratch.dpkg("-i", scratch.deb)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert scratch.status() == "install ok installed"
    uid, gid = scratch.ids("passwd", "djamms-edge"), scratch.ids("group", "djamms-edge")
    assert scratch.ids("passwd", "djamms-hub") < 1000

    checked = scratch.djamms_edge("check-config", "--config", str(scratch / "etc/djamms/config.toml"))
    assert (checked.returncode, checked.stdout.startswith("config OK")) == (0, True), checked.stderr
    venv = scratch / "opt/djamms/venv"
    assert venv.is_symlink() and os.readlink(venv).startswith(f"venv-{VERSION}.")
    assert (venv / "bin/djamms-edge").read_text().startswith("#!/opt/djamms/venv-")  # paths as seen inside

    config = scratch / "etc/djamms/config.toml"
    assert config.read_text() == (REPO / "config.example.toml").read_text()
    assert (config.stat().st_gid, config.stat().st_mode & 0o777) == (gid, 0o640)  # it will hold the device token
    for directory in ("var/lib/djamms-edge", "var/cache/djamms-edge"):
        assert (scratch / directory).stat().st_uid == uid
    wants = scratch / "etc/systemd/system"
    assert (wants / "multi-user.target.wants/djamms-edge.service").is_symlink()
    assert (wants / "timers.target.wants/djamms-edge-ytdlp-update.timer").is_symlink()
    assert (wants / "paths.target.wants/djamms-edge-ytdlp-restart.path").is_symlink()
    assert not list(wants.rglob("djamms-hub.service"))  # the hub is for servers: not enabled
    assert not list(wants.rglob("djamms-hub-backup.timer"))  # nor its backups

    # The installed units verify against the installed program.
    verified = verify_in_root(scratch.path, sorted(p.name for p in (scratch / "lib/systemd/system").iterdir()))
    assert (verified.returncode, verified.stderr) == (0, "")

    # --- the venue configures the box and it accumulates state ---
    config.write_text(config.read_text().replace('venue_id = "demo-venue"', 'venue_id = "the-anchor"'))
    config.chmod(0o600)
    (scratch / "var/lib/djamms-edge/edge.db").write_bytes(b"state")
    (scratch / "var/cache/djamms-edge/abcdefghijk.mp4").write_bytes(b"media")

    # --- reinstall (the upgrade path: configure with the old version) keeps all of it ---
    old_venv = os.readlink(venv)
    again = scratch.dpkg("-i", scratch.deb)
    assert again.returncode == 0, again.stdout + again.stderr
    assert 'venue_id = "the-anchor"' in config.read_text()
    assert config.stat().st_mode & 0o777 == 0o600  # an admin's choice stands
    assert (scratch / "var/lib/djamms-edge/edge.db").read_bytes() == b"state"
    # A new tree; the previous one stays for the daemon still running from it, older ones go.
    assert os.readlink(venv) != old_venv and (scratch / "opt/djamms" / old_venv).is_dir()
    assert len(list((scratch / "opt/djamms").glob("venv-*"))) == 2
    assert scratch.djamms_edge("check-config", "--config", str(config)).returncode == 0
    second_venv = os.readlink(venv)
    assert scratch.dpkg("-i", scratch.deb).returncode == 0
    assert {p.name for p in (scratch / "opt/djamms").glob("venv-*")} == {second_venv, os.readlink(venv)}

    # --- remove: the program goes, the venue's config and state stay ---
    removed = scratch.dpkg("-r", "djamms-edge")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert scratch.status() == "deinstall ok config-files"
    assert not (scratch / "opt/djamms").exists()
    assert not (scratch / "usr/bin/djamms-edge").is_symlink()
    assert 'venue_id = "the-anchor"' in config.read_text()
    assert (scratch / "var/lib/djamms-edge/edge.db").exists()
    assert (scratch / "var/cache/djamms-edge/abcdefghijk.mp4").exists()

    # --- purge: config, state and cache go too ---
    purged = scratch.dpkg("-P", "djamms-edge")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert scratch.status() == ""
    for gone in ("etc/djamms", "var/lib/djamms-edge", "var/cache/djamms-edge", "opt/djamms"):
        assert not (scratch / gone).exists(), gone
    assert not list((scratch / "etc/systemd/system").rglob("djamms-*"))


# Stands in for systemd's systemctl inside the chroot (no systemd runs there): it records each call.
FAKE_SYSTEMCTL = """#!/bin/sh
echo "$*" >> /var/log/systemctl-calls
case "$*" in *is-enabled*) echo enabled ;; esac
"""
# This container's policy-rc.d forbids starting services; the chroot's allows it, as on a venue box.
ALLOW_STARTS = "#!/bin/sh\nexit 0\n"
PACKAGE_IN_CHROOT = "/root/djamms-edge.deb"
# Runs "$@" chrooted, with /usr an overlay over this system's (writes land in $1) and /proc mounted,
# all in a private mount namespace that disappears with the process: no mount outlives a test.
IN_CHROOT = """
mount -t overlay overlay -o "lowerdir=/usr,upperdir=$1,workdir=$2" "$3/usr"
mount -t proc proc "$3/proc"
root=$3
shift 3
exec chroot "$root" "$@"
"""


@dataclass
class Chroot:
    root: Path
    usr_changes: Path  # the overlay's upper layer: what the package wrote under /usr
    usr_work: Path

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
        return run("unshare", "--mount", "--propagation", "private", "sh", "-ec", IN_CHROOT, "sh",
                   self.usr_changes, self.usr_work, self.root, *argv, env=env)

    def systemctl_calls(self) -> list[str]:
        calls = self.root / "var/log/systemctl-calls"
        return calls.read_text().splitlines() if calls.exists() else []


@pytest.fixture
def chroot(tmp_path: Path, deb: Path) -> Chroot:
    assert Path("/bin").is_symlink(), "expects a merged-/usr system (Debian 12 default)"
    root, changes, work = tmp_path / "chroot", tmp_path / "usr-changes", tmp_path / "usr-work"
    for directory in (root / "usr", changes / "bin", changes / "sbin", work, root / "proc", root / "dev",
                      root / "run/systemd/system", root / "var/log", root / "var/cache", root / "root"):
        directory.mkdir(parents=True)
    for link in ("bin", "sbin", "lib", "lib64"):
        if Path("/", link).is_symlink():
            (root / link).symlink_to(os.readlink(Path("/", link)))
    shutil.copytree("/etc", root / "etc", symlinks=True)
    shutil.copytree("/var/lib/dpkg", root / "var/lib/dpkg", symlinks=True)
    (root / "tmp").mkdir(mode=0o1777)
    os.mknod(root / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    (root / "dev/null").chmod(0o666)
    for name, text in (("bin/systemctl", FAKE_SYSTEMCTL), ("sbin/policy-rc.d", ALLOW_STARTS)):
        (changes / name).write_text(text)
        (changes / name).chmod(0o755)
    shutil.copy(deb, root / PACKAGE_IN_CHROOT.lstrip("/"))
    return Chroot(root, changes, work)  # nothing stays mounted: pytest's tmp retention can delete it


@needs_root
def test_in_a_chroot_of_this_system_it_starts_only_with_a_valid_config(chroot: Chroot) -> None:
    installed = chroot.run("dpkg", "-i", PACKAGE_IN_CHROOT)
    assert installed.returncode == 0, installed.stdout + installed.stderr  # dependencies met, no force
    assert (chroot.usr_changes / "lib/djamms-edge/wheels").is_dir()  # written into the overlay only
    assert "--quiet --system restart djamms-edge.service" in chroot.systemctl_calls()
    checked = chroot.run("djamms-edge", "check-config", "--config", "/etc/djamms/config.toml")
    assert (checked.returncode, checked.stdout.strip()) == (0, "config OK (/etc/djamms/config.toml)")

    # A venue's broken edit: the upgrade must not restart the daemon into a crash loop.
    config = chroot.root / "etc/djamms/config.toml"
    config.write_text(config.read_text() + "\n[edge.nonsense]\nkey = 1\n")
    (chroot.root / "var/log/systemctl-calls").unlink()
    upgraded = chroot.run("dpkg", "-i", PACKAGE_IN_CHROOT)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert "djamms-edge: not started; fix /etc/djamms/config.toml" in upgraded.stderr
    assert "edge.nonsense" in upgraded.stderr  # check-config said what is wrong
    assert not [call for call in chroot.systemctl_calls() if "djamms-edge.service" in call and "restart" in call]
