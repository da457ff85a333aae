"""The nightly yt-dlp update: a bad release never becomes the one the daemon imports.

The decision logic runs against a fake index (table-driven); the last tests use real pip, the real
self-test (a fresh interpreter fetching over loopback HTTP with the daemon's own YtDlpFetcher) and
the real ``djamms-edge update-ytdlp`` command against wheels in a local directory. The real upgrade
fetches from PyPI, which tests never reach.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from djamms_edge.edge.media.cache import WORK_DIR_NAME, MediaCache
from djamms_edge.edge.media.config import AnalysisConfig, CacheConfig, FetchConfig
from djamms_edge.edge.media.fetcher import YtDlpFetcher
from djamms_edge.edge.player.seams import render_tone
from djamms_edge.edge.ytdlp_update import (
    ACTIVE_LINK,
    InstallError,
    UpdateResult,
    packaged_version,
    release_version,
    update,
    version_key,
)
from tests.edge.media.http_server import KNOWS_THE_CHANGE, MediaServer

REPO = Path(__file__).resolve().parents[2]
VENV_PYTHON = REPO / ".venv" / "bin" / "python"


@dataclass
class FakeIndex:
    """PyPI plus a fresh interpreter, as far as the update logic can tell."""

    latest: str | None  # what "pip install --upgrade yt-dlp" would fetch; None = network down
    broken: set[str] = field(default_factory=set)  # releases that fail their self-test anywhere
    broken_when_active: set[str] = field(default_factory=set)  # pass where downloaded, fail via `current`
    tested: list[tuple[str, str]] = field(default_factory=list)

    def fetch_latest(self, into: Path) -> None:
        if self.latest is None:
            raise InstallError("pip failed: network is unreachable")
        make_release(into, self.latest)

    def self_test(self, directory: Path, expected_version: str) -> str | None:
        # Like the real one, it tests what is actually in the directory, not what it was told.
        assert release_version(directory) == expected_version
        self.tested.append((directory.name, expected_version))
        if expected_version in self.broken:
            return "self-test: ImportError: cannot import name 'YoutubeDL'"
        if directory.name == ACTIVE_LINK and expected_version in self.broken_when_active:
            return "self-test: extraction from a local page returned None"
        return None


def make_release(directory: Path, version: str) -> Path:
    (directory / "yt_dlp").mkdir(parents=True)
    (directory / "yt_dlp" / "version.py").write_text(f"__version__ = '{version}'\n")
    return directory


def state(root: Path) -> tuple[str | None, list[str]]:
    """(active release, release directories on disk); staging leftovers would show up here."""
    link = root / ACTIVE_LINK
    active = os.readlink(link) if link.is_symlink() else None
    return active, sorted(p.name for p in root.iterdir() if p.is_dir() and not p.is_symlink())


@pytest.mark.parametrize(
    ("case", "releases", "active", "packaged", "index", "expected", "after"),
    [
        ("fresh box, newer release works",
         [], None, "2026.1.1", FakeIndex("2026.2.1"),
         UpdateResult("updated", "2026.2.1", "2026.2.1"), ("2026.2.1", ["2026.2.1"])),
        ("nothing newer than the packaged release",
         [], None, "2026.1.1", FakeIndex("2026.1.1"),
         UpdateResult("up-to-date", "2026.1.1", "2026.1.1"), (None, [])),
        ("network down: nothing changes",
         ["2026.2.1"], "2026.2.1", "2026.1.1", FakeIndex(None),
         UpdateResult("fetch-failed", "2026.2.1", None, "pip failed: network is unreachable"),
         ("2026.2.1", ["2026.2.1"])),
        ("new release fails where downloaded: never activated",
         ["2026.2.1"], "2026.2.1", "2026.1.1", FakeIndex("2026.3.1", broken={"2026.3.1"}),
         UpdateResult("rejected", "2026.2.1", "2026.3.1", "self-test: ImportError: cannot import name 'YoutubeDL'"),
         ("2026.2.1", ["2026.2.1"])),
        ("new release fails once active: rolled back to the previous side release",
         ["2026.2.1"], "2026.2.1", "2026.1.1", FakeIndex("2026.3.1", broken_when_active={"2026.3.1"}),
         UpdateResult("rolled-back", "2026.2.1", "2026.3.1", "self-test: extraction from a local page returned None"),
         ("2026.2.1", ["2026.2.1"])),
        ("first side release fails once active: back to the packaged one",
         [], None, "2026.1.1", FakeIndex("2026.3.1", broken_when_active={"2026.3.1"}),
         UpdateResult("rolled-back", "2026.1.1", "2026.3.1", "self-test: extraction from a local page returned None"),
         (None, [])),
        ("keeps the active and the previous release, drops older ones",
         ["2026.1.5", "2026.2.1"], "2026.2.1", "2026.1.1", FakeIndex("2026.3.1"),
         UpdateResult("updated", "2026.3.1", "2026.3.1"), ("2026.3.1", ["2026.2.1", "2026.3.1"])),
        ("a package upgrade with a newer yt-dlp stops the old side release shadowing it",
         ["2026.2.1"], "2026.2.1", "2026.4.1", FakeIndex("2026.4.1"),
         UpdateResult("up-to-date", "2026.4.1", "2026.4.1"), (None, ["2026.2.1"])),
        ("a version that could name another directory is refused",
         [], None, "2026.1.1", FakeIndex("2099.1.1/../../escape"),
         UpdateResult("rejected", "2026.1.1", None, "unusable version '2099.1.1/../../escape'"), (None, [])),
        ("nightly build numbers count as newer",
         [], None, "2026.2.1", FakeIndex("2026.2.1.232503"),
         UpdateResult("updated", "2026.2.1.232503", "2026.2.1.232503"), ("2026.2.1.232503", ["2026.2.1.232503"])),
    ],
)
def test_update_outcomes(
    tmp_path: Path,
    case: str,
    releases: list[str],
    active: str | None,
    packaged: str,
    index: FakeIndex,
    expected: UpdateResult,
    after: tuple[str | None, list[str]],
) -> None:
    root = tmp_path / "yt-dlp"
    root.mkdir()
    for version in releases:
        make_release(root / version, version)
    if active:
        (root / ACTIVE_LINK).symlink_to(active)
    assert update(root, index, packaged) == expected, case
    assert state(root) == after, case


def test_every_activated_release_was_tested_first_where_downloaded_then_through_current(tmp_path: Path) -> None:
    index = FakeIndex("2026.2.1")
    update(tmp_path, index, "2026.1.1")
    assert [name.startswith(".staging-") for name, _ in index.tested] == [True, False]
    assert index.tested[1] == (ACTIVE_LINK, "2026.2.1")


def test_a_second_update_at_the_same_time_is_refused(tmp_path: Path) -> None:
    with open(tmp_path / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(InstallError, match="another yt-dlp update is running"):
            update(tmp_path, FakeIndex("2026.2.1"), "2026.1.1")
    assert state(tmp_path) == (None, [])


@pytest.mark.parametrize(
    ("older", "newer"),
    [("2025.12.31", "2026.1.1"), ("2026.1.9", "2026.1.10"), ("2026.10.26", "2026.10.26.1")],
)
def test_version_order(older: str, newer: str) -> None:
    assert version_key(older) < version_key(newer)


# ------------------------------------------------- real pip, real self-test, real command ----


def write_wheel(directory: Path, version: str, package_files: dict[str, bytes]) -> Path:
    """A minimal yt-dlp wheel, so pip can install from a local directory without PyPI."""
    dist_info = f"yt_dlp-{version}.dist-info"
    files = {
        **package_files,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: yt-dlp\nVersion: {version}\n".encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: djamms-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{dist_info}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{dist_info}/RECORD"]).encode()
    wheel = directory / f"yt_dlp-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


def real_yt_dlp_files(version: str) -> dict[str, bytes]:
    """The installed yt-dlp's sources, relabelled as ``version`` (a stand-in for a newer release)."""
    import yt_dlp

    source = Path(yt_dlp.__file__).parent
    files = {
        f"yt_dlp/{path.relative_to(source)}": path.read_bytes()
        for path in source.rglob("*.py")
    }
    files["yt_dlp/version.py"] = (
        f"__version__ = '{version}'\nRELEASE_GIT_HEAD = ''\nVARIANT = None\nUPDATE_HINT = None\n"
        f"CHANNEL = 'stable'\nORIGIN = 'yt-dlp/yt-dlp'\n_pkg_version = '{version}'\n"
    ).encode()
    return files


def run_update(tmp_path: Path, wheels: Path, state_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.toml"
    config.write_text(f'[edge]\nstate_dir = "{state_dir or tmp_path / "state"}"\n')
    env = {k: v for k, v in os.environ.items() if k not in {"STATE_DIRECTORY", "PYTHONPATH"}}
    return subprocess.run(
        [str(REPO / ".venv/bin/djamms-edge"), "update-ytdlp", "--config", str(config),
         "--no-index", "--find-links", str(wheels)],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )


def imported_version(root: Path) -> str:
    # What the daemon would import under the unit's Environment=PYTHONPATH=<state>/yt-dlp/current.
    env = {**os.environ, "PYTHONPATH": str(root / ACTIVE_LINK)}
    return subprocess.run(
        [str(VENV_PYTHON), "-c", "import yt_dlp.version; print(yt_dlp.version.__version__)"],
        capture_output=True, text=True, timeout=60, env=env, check=True,
    ).stdout.strip()


def test_real_pip_install_of_a_broken_release_is_rejected(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    write_wheel(wheels, "2099.1.1", {
        "yt_dlp/__init__.py": b"raise ImportError('this release is broken')\n",
        "yt_dlp/version.py": b"__version__ = '2099.1.1'\n",
    })
    result = run_update(tmp_path, wheels)
    assert result.returncode == 1
    assert "yt-dlp 2099.1.1 failed its self-test and was not activated" in result.stdout
    assert "this release is broken" in result.stdout
    root = tmp_path / "state" / "yt-dlp"
    assert state(root) == (None, [])
    assert imported_version(root) != "2099.1.1"  # the daemon still gets the packaged release


def test_real_pip_install_of_a_working_release_becomes_current(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    write_wheel(wheels, "2099.1.1", real_yt_dlp_files("2099.1.1"))
    result = run_update(tmp_path, wheels)
    assert (result.returncode, result.stdout.strip()) == (0, "yt-dlp updated to 2099.1.1"), result.stderr
    root = tmp_path / "state" / "yt-dlp"
    assert state(root) == ("2099.1.1", ["2099.1.1"])
    assert imported_version(root) == "2099.1.1"
    # Run again: nothing newer in the index.
    again = run_update(tmp_path, wheels)
    assert (again.returncode, again.stdout.strip()) == (0, "yt-dlp 2099.1.1 is the newest release")


def test_a_release_that_imports_but_cannot_download_is_rejected(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    files = real_yt_dlp_files("2099.1.1")
    # A regression in the HTTP downloader: import, extractor and format selection all still work.
    files["yt_dlp/downloader/http.py"] += (
        b"\ndef _broken(self, filename, info_dict):\n    raise OSError('downloader regression')\n"
        b"HttpFD.real_download = _broken\n"
    )
    write_wheel(wheels, "2099.1.1", files)
    result = run_update(tmp_path, wheels)
    assert result.returncode == 1
    assert "yt-dlp 2099.1.1 failed its self-test and was not activated" in result.stdout
    assert "downloader regression" in result.stdout
    assert state(tmp_path / "state" / "yt-dlp") == (None, [])


def test_no_index_reachable_leaves_the_box_as_it_was(tmp_path: Path) -> None:
    empty = tmp_path / "wheels"
    empty.mkdir()
    result = run_update(tmp_path, empty)
    assert result.returncode == 1
    assert result.stdout.startswith("could not fetch a new yt-dlp; still using ")
    assert state(tmp_path / "state" / "yt-dlp") == (None, [])


def test_an_unwritable_state_directory_is_one_clear_line(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "state"
    not_a_directory.write_text("a file where the state directory should be")
    result = run_update(tmp_path, tmp_path, state_dir=not_a_directory)
    assert result.returncode == 1
    assert result.stderr.startswith("djamms-edge update-ytdlp: nothing changed: ")
    assert "Traceback" not in result.stderr


async def test_a_track_the_old_release_could_not_fetch_is_fetched_as_soon_as_the_update_lands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """YouTube changed (the server refuses clients without a header), so the packaged yt-dlp is refused; the
    nightly update installs a release that knows the change. The running cache, not restarted, tries the track
    again at once (it would wait an hour for the same release) and plays it."""
    state = tmp_path / "state"
    # The daemon's unit: the update's ``current`` first on PYTHONPATH, before it exists (a box never updated).
    monkeypatch.setenv("PYTHONPATH", str(state / "yt-dlp" / ACTIVE_LINK))
    served = tmp_path / "served"
    served.mkdir()
    await render_tone(served / "clip.m4a", 440, lead=0.5, tone=4.0, trail=0.5)
    server = MediaServer(served)
    await server.start()
    fetch = FetchConfig(mode="audio", attempts=1, socket_timeout_seconds=5.0, allowed_hosts=("127.0.0.1",))
    cache = MediaCache(state / "media.db", tmp_path / "cache", YtDlpFetcher(fetch, tmp_path / "cache" / WORK_DIR_NAME),
                       AnalysisConfig(), CacheConfig(retry_failed_seconds=3600.0))
    await cache.open()
    try:
        url = f"{server.url}/changed/clip.m4a"
        refused = await cache.ensure(url)
        assert (refused.status, refused.failure_class) == ("failed", "environment"), refused
        assert "403" in (refused.error or "") and refused.tool_version == packaged_version()
        asked = len(server.requests)
        assert (await cache.ensure(url)).status == "failed"
        assert len(server.requests) == asked  # the same release would be refused again: not asked for an hour

        wheels = tmp_path / "wheels"
        wheels.mkdir()
        files = real_yt_dlp_files("2099.1.1")
        files["yt_dlp/utils/networking.py"] += f"\nstd_headers[{KNOWS_THE_CHANGE!r}] = 'yes'\n".encode()
        write_wheel(wheels, "2099.1.1", files)
        result = await asyncio.to_thread(run_update, tmp_path, wheels, state)
        assert (result.returncode, result.stdout.strip()) == (0, "yt-dlp updated to 2099.1.1"), result.stderr

        fetched = await cache.ensure(url)
        assert fetched.status == "ready", fetched
        track = await cache.playable(url)
        assert track is not None and track.path.is_file() and track.duration == pytest.approx(5.0, abs=0.1)
        assert len(server.requests) > asked
    finally:
        await cache.close()
        await server.close()
