"""The ffmpeg runner: a run that overstays or whose caller gives up is stopped, with its whole group."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from djamms_edge.edge.media import ffmpeg
from djamms_edge.edge.media.ffmpeg import MediaError, media_input


def _running_with(marker: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker.encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def _endless(output: Path) -> list[str]:
    # -re: real time, so an endless source really runs until stopped.
    return ["ffmpeg", "-nostdin", "-v", "error", "-re", "-f", "lavfi", "-i", "anullsrc", "-y", f"file:{output}.wav"]


async def test_a_run_past_its_limit_is_stopped(tmp_path: Path) -> None:
    marker = str(tmp_path / "overstay")
    with pytest.raises(MediaError, match="took longer than"):
        await ffmpeg.run(_endless(Path(marker)), limit_seconds=0.5, what="endless")
    assert _running_with(marker) == []


async def test_a_cancelled_run_is_stopped(tmp_path: Path) -> None:
    marker = str(tmp_path / "cancelled")
    task = asyncio.create_task(ffmpeg.run(_endless(Path(marker)), limit_seconds=60, what="endless"))
    for _ in range(100):
        if _running_with(marker):
            break
        await asyncio.sleep(0.02)
    assert _running_with(marker)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _running_with(marker) == []


@pytest.mark.parametrize(
    ("given", "url"),
    [("-y", None), ("concat:a|b", None), ("http://", None), ("https://host/x.mp4", "https://host/x.mp4")],
)
def test_inputs_are_files_or_http_urls_only(
    given: str, url: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    if url is None:
        with pytest.raises(MediaError):
            media_input(given)
    else:
        assert media_input(given).url == url


def test_a_local_file_is_passed_as_an_absolute_file_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-y").write_bytes(b"")  # a file named like an option stays a file
    assert media_input("-y").url == f"file:{tmp_path / '-y'}"
    assert media_input("-y").protocols == "file"


def _ffmpeg_nice(marker: str) -> int | None:
    """The nice value of the ffmpeg process (after ``nice`` exec'd it) whose command line holds ``marker``."""
    for pid in _running_with(marker):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "ffmpeg":
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                return int(fields[16])  # field 19 of /proc/PID/stat
        except OSError:
            continue
    return None


async def test_low_priority_runs_at_nice_19(tmp_path: Path) -> None:
    marker = str(tmp_path / "idle-night")
    task = asyncio.create_task(ffmpeg.run(_endless(Path(marker)), limit_seconds=60, what="x", low_priority=True))
    try:
        for _ in range(100):
            if _ffmpeg_nice(marker) is not None:
                break
            await asyncio.sleep(0.02)
        assert _ffmpeg_nice(marker) == 19
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert _running_with(marker) == []
