"""Keep yt-dlp current on a box in the field without risking the player (``djamms-edge update-ytdlp``).

Sites change and old yt-dlp releases stop working, so a venue box updates nightly. The packaged
virtualenv under /opt is never modified (it is root's and read-only under the unit's
ProtectSystem=strict): a new release is installed beside it, in ``<state_dir>/yt-dlp/<version>/``,
by the daemon's own unprivileged user. It becomes active only by atomically switching the
``current`` symlink, which the systemd unit puts first on the daemon's PYTHONPATH.

Each release is self-tested twice in a fresh interpreter: once where it was downloaded (a failure
leaves the box untouched) and once through ``current`` exactly as the daemon will import it (a
failure switches the link back to the previous release). The previous release is kept so the
rollback needs no network.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import fcntl
import functools
import http.server
import importlib.metadata
import importlib.util
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from djamms_edge.shared.cli import add_config_option, load_or_exit
from djamms_edge.shared.ids import parse_source
from djamms_edge.shared.logs import setup_logging

if TYPE_CHECKING:
    from djamms_edge.edge.media.fetcher import Fetcher

log = logging.getLogger(__name__)

ACTIVE_LINK = "current"
DISTRIBUTION = "yt-dlp"
_VERSION_LINE = re.compile(r"""^__version__\s*=\s*['"]([^'"]+)['"]""", re.MULTILINE)
# The version names a directory: nothing that could step out of it ("/", "..") is accepted.
_SAFE_VERSION = re.compile(r"[0-9][0-9A-Za-z+_-]*(\.[0-9A-Za-z+_-]+)*")


def side_directory(state_dir: Path) -> Path:
    """Where releases newer than the packaged one live."""
    return state_dir / "yt-dlp"


class InstallError(Exception):
    """The new release could not be fetched (no network, PyPI down, pip failed)."""


class Installer(Protocol):
    """The outside world of an update: fetching a release and testing one in a fresh interpreter."""

    def fetch_latest(self, into: Path) -> None:
        """Install the newest yt-dlp into the empty directory ``into``; raise InstallError."""

    def self_test(self, directory: Path, expected_version: str) -> str | None:
        """Import yt-dlp from ``directory`` in a new process and use it; a problem, or None if fine."""


Outcome = Literal["updated", "up-to-date", "fetch-failed", "rejected", "rolled-back"]


@dataclass(frozen=True)
class UpdateResult:
    outcome: Outcome
    in_use: str | None  # the release the daemon uses after this run (None: the packaged one, version unknown)
    candidate: str | None = None
    detail: str = ""

    def describe(self) -> str:
        using = self.in_use or "the packaged release"
        text = {
            "updated": f"yt-dlp updated to {self.candidate}",
            "up-to-date": f"yt-dlp {using} is the newest release",
            "fetch-failed": f"could not fetch a new yt-dlp; still using {using}",
            "rejected": f"yt-dlp {self.candidate} failed its self-test and was not activated; still using {using}",
            "rolled-back": f"yt-dlp {self.candidate} failed once active; rolled back to {using}",
        }[self.outcome]
        return f"{text} ({self.detail})" if self.detail else text


def version_key(version: str) -> tuple[int, ...]:
    # yt-dlp versions are dates (2026.10.26) with an optional build number (2026.10.26.232503).
    return tuple(int(part) for part in re.findall(r"\d+", version))


def release_version(directory: Path) -> str | None:
    """The yt-dlp version installed in ``directory`` (read from its source, never imported here)."""
    try:
        text = (directory / "yt_dlp" / "version.py").read_text()
    except OSError:
        return None
    match = _VERSION_LINE.search(text)
    return match.group(1) if match else None


def packaged_version() -> str | None:
    """The yt-dlp version inside the application's own virtualenv (ignoring PYTHONPATH)."""
    found = importlib.metadata.distributions(name=DISTRIBUTION, path=[sysconfig.get_path("purelib")])
    return next((d.version for d in found), None)


def _active_release(root: Path) -> Path | None:
    link = root / ACTIVE_LINK
    target = link.resolve() if link.is_symlink() else None
    return target if target is not None and target.is_dir() else None


def _point_active_at(root: Path, release: Path | None) -> None:
    """Switch ``current`` in one rename, so the daemon never sees a missing or half-made link."""
    link = root / ACTIVE_LINK
    if release is None:
        link.unlink(missing_ok=True)
        return
    temporary = root / f".{ACTIVE_LINK}.{os.getpid()}"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(release.name)  # relative: the tree stays valid if the state directory moves
    os.replace(temporary, link)


@contextlib.contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    # The nightly timer and an engineer running the command by hand must not interleave.
    with open(root / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InstallError("another yt-dlp update is running") from None
        yield


def update(root: Path, installer: Installer, packaged: str | None) -> UpdateResult:
    """Fetch, test, activate, re-test and (if needed) roll back one yt-dlp release under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    with _exclusive(root):
        return _update_locked(root, installer, packaged)


def _update_locked(root: Path, installer: Installer, packaged: str | None) -> UpdateResult:
    previous = _active_release(root)
    if previous is not None and packaged is not None and version_key(packaged) >= version_key(previous.name):
        # A package upgrade brought a release at least as new: stop shadowing it with an older one.
        log.info("packaged yt-dlp %s supersedes %s; deactivating the side release", packaged, previous.name)
        _point_active_at(root, None)
        previous = None
    in_use = previous.name if previous is not None else packaged

    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        try:
            installer.fetch_latest(staging)
        except InstallError as exc:
            return UpdateResult("fetch-failed", in_use, detail=str(exc))
        candidate = release_version(staging)
        if candidate is None:
            return UpdateResult("rejected", in_use, detail="the download contains no yt_dlp package")
        if not _SAFE_VERSION.fullmatch(candidate):
            return UpdateResult("rejected", in_use, detail=f"unusable version {candidate!r}")
        if in_use is not None and version_key(candidate) <= version_key(in_use):
            return UpdateResult("up-to-date", in_use, candidate)
        problem = installer.self_test(staging, candidate)
        if problem is not None:
            return UpdateResult("rejected", in_use, candidate, problem)
        release = root / candidate
        shutil.rmtree(release, ignore_errors=True)
        staging.rename(release)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    _point_active_at(root, release)
    problem = installer.self_test(root / ACTIVE_LINK, candidate)
    if problem is not None:
        _point_active_at(root, previous)
        shutil.rmtree(release, ignore_errors=True)
        return UpdateResult("rolled-back", in_use, candidate, problem)
    _prune(root, keep={release, previous})
    return UpdateResult("updated", candidate, candidate)


def _prune(root: Path, keep: set[Path | None]) -> None:
    """Keep the active release and the one before it (the offline rollback); drop older ones."""
    for entry in root.iterdir():
        if entry.is_dir() and not entry.is_symlink() and not entry.name.startswith(".") and entry not in keep:
            shutil.rmtree(entry, ignore_errors=True)


# ------------------------------------------------------------------ the real installer: pip ----


def _run(argv: Sequence[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a child in its own process group; on timeout terminate, then kill, the whole group."""
    with subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as child:
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGTERM)
            try:
                out, err = child.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                out, err = child.communicate()
            err += f"\n(timed out after {timeout:.0f}s)"
        return subprocess.CompletedProcess(argv, child.returncode, out, err)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


@dataclass(frozen=True)
class PipInstaller:
    """Fetches with this interpreter's pip (needs PyPI, or ``pip_options`` naming a local wheel dir)."""

    python: str = sys.executable
    pip_options: tuple[str, ...] = ()
    config_path: Path | None = None  # the box's config: the self-test fetches with its [edge.fetch]
    timeout: float = 600.0
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def fetch_latest(self, into: Path) -> None:
        argv = [
            self.python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
            "--no-cache-dir", "--upgrade", "--no-deps",  # its optional dependencies stay the packaged ones
            "--target", str(into), *self.pip_options, DISTRIBUTION,
        ]
        result = _run(argv, self.env, self.timeout)
        if result.returncode != 0:
            raise InstallError(f"pip failed: {_last_line(result.stderr)}")

    def self_test(self, directory: Path, expected_version: str) -> str | None:
        env = {**self.env, "PYTHONPATH": str(directory)}
        argv = [self.python, "-m", __name__, "--self-test", expected_version, str(directory)]
        if self.config_path is not None:
            argv.append(str(self.config_path))
        result = _run(argv, env, timeout=120)
        if result.returncode != 0:
            return f"self-test: {_last_line(result.stderr)}"
        return None


# --------------------------------------------------------- the self-test, in a fresh process ----


def _self_test(expected_version: str, directory: Path, config_path: Path | None) -> None:
    """Fetch a file over loopback HTTP with the daemon's own fetcher and yt-dlp from ``directory``.

    Going through ``YtDlpFetcher`` (the one module that uses yt-dlp) with this box's ``[edge.fetch]``
    settings tests exactly the options the daemon passes, which is where a new release can break.
    """
    spec = importlib.util.find_spec("yt_dlp")
    origin = Path(spec.origin).resolve() if spec is not None and spec.origin else None
    if origin is None or not origin.is_relative_to(directory.resolve()):
        raise RuntimeError(f"yt-dlp would be imported from {origin}, not from {directory}")
    from djamms_edge.config import load_config
    from djamms_edge.edge.media import ytdlp  # noqa: F401 -- imports yt-dlp: a broken release fails here
    from djamms_edge.edge.media.fetcher import YtDlpFetcher  # its media workers inherit our PYTHONPATH

    imported = sys.modules["yt_dlp.version"].__version__
    if imported != expected_version:
        raise RuntimeError(f"imported yt-dlp {imported}, expected {expected_version}")
    fetch_config = load_config(config_path).edge.fetch
    # Its own loopback server, allowed as such; every other setting as the daemon has it.
    fetch_config = dataclasses.replace(
        fetch_config, attempts=1, allowed_hosts=(*fetch_config.allowed_hosts, "127.0.0.1")
    )
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        served = scratch / "served"
        served.mkdir()
        media = served / "clip.mp4"
        media.write_bytes(os.urandom(64 * 1024))
        handler = functools.partial(_QuietHandler, directory=str(served))
        with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
            threading.Thread(target=server.serve_forever, name="self-test-http", daemon=True).start()
            try:
                url = f"http://127.0.0.1:{server.server_address[1]}/clip.mp4"
                fetched = asyncio.run(_fetch_once(YtDlpFetcher(fetch_config, scratch), url, scratch / "fetched"))
            finally:
                server.shutdown()
        if fetched.read_bytes() != media.read_bytes():
            raise RuntimeError("the fetched file differs from the served one")


async def _fetch_once(fetcher: Fetcher, url: str, dest_stem: Path) -> Path:
    try:
        return (await fetcher.fetch(parse_source(url), dest_stem)).path
    finally:
        await fetcher.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the self-test's requests are not news
        pass


# ----------------------------------------------------------------------------------- the CLI ----


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = sub.add_parser(
        "update-ytdlp", help="install the newest yt-dlp beside the app, self-test it, roll back on failure"
    )
    add_config_option(command)
    command.add_argument("--find-links", metavar="DIR", help="also look for wheels in DIR (pip --find-links)")
    command.add_argument("--no-index", action="store_true", help="do not use PyPI, only --find-links")


def run_command(args: argparse.Namespace) -> int:
    """``djamms-edge update-ytdlp``: exit 0 when on the newest working release, 1 when not updated."""
    config = load_or_exit(args.config)
    setup_logging(config.edge.log_level, program="djamms-edge-ytdlp-update")
    options: tuple[str, ...] = ("--no-index",) if args.no_index else ()
    if args.find_links:
        options += ("--find-links", args.find_links)
    installer = PipInstaller(pip_options=options, config_path=args.config)
    try:
        result = update(side_directory(config.edge.state_dir), installer, packaged_version())
    except (InstallError, OSError) as exc:  # another run holds the lock; the state directory is not writable
        print(f"djamms-edge update-ytdlp: nothing changed: {exc}", file=sys.stderr)
        return 1
    print(result.describe())
    return 0 if result.outcome in {"updated", "up-to-date"} else 1


def _self_test_main(argv: Sequence[str]) -> int:
    expected, directory, *config = argv
    try:
        _self_test(expected, Path(directory), Path(config[0]) if config else None)
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--self-test"]:
        raise SystemExit(_self_test_main(sys.argv[2:]))
    raise SystemExit("usage: python -m djamms_edge.edge.ytdlp_update --self-test VERSION DIRECTORY [CONFIG]")
