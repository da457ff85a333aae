"""The only module that runs ffmpeg and ffprobe.

Every run is an argv list (never a shell) in its own process group; a run
that outlives its timeout, or whose caller is cancelled, is terminated and then
killed as a group. Inputs are always passed as ``file:/absolute/path`` or an
http(s) URL with a protocol whitelist, so a file named ``-y`` or a crafted URL
(``concat:``, ``subfile:``…) can never turn into an option or another protocol.
What the tools print is parsed elsewhere, by pure functions (``ffparse``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from djamms_edge.edge.media.ffparse import summarize_error
from djamms_edge.shared.ids import is_media_url

if TYPE_CHECKING:
    import asyncio

log = logging.getLogger(__name__)

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"  # only the benchmark's reference command uses it
KILL_GRACE_SECONDS = 2.0
_FILE_PROTOCOLS = "file"
_HTTP_PROTOCOLS = "http,https,tcp,tls,crypto,httpproxy"


class MediaError(Exception):
    """A file or URL that cannot be analysed: not media, broken, truncated or unreachable."""


@dataclass(frozen=True, slots=True)
class MediaInput:
    """What ffmpeg reads. Build it with :func:`media_input`."""

    url: str
    protocols: str
    name: str  # as the user gave it, for messages

    @property
    def is_remote(self) -> bool:
        return self.protocols == _HTTP_PROTOCOLS


def media_input(path_or_url: str | Path) -> MediaInput:
    """A local file (must exist) or an http(s) URL; anything else is a MediaError."""
    text = str(path_or_url)
    if isinstance(path_or_url, str) and text.lower().startswith(("http://", "https://")):
        if not is_media_url(text):
            raise MediaError(f"{text!r}: not a valid http(s) URL")
        return MediaInput(text, _HTTP_PROTOCOLS, text)
    path = Path(path_or_url).expanduser()
    if not path.is_file():
        raise MediaError(f"{text}: no such file")
    return MediaInput(f"file:{path.resolve()}", _FILE_PROTOCOLS, text)


@dataclass(frozen=True, slots=True)
class RunResult:
    returncode: int
    stdout: str
    stderr: str


async def run(argv: Sequence[str], *, limit_seconds: float, what: str, low_priority: bool = False) -> RunResult:
    """Run one tool to completion; stop its whole process group on timeout or cancellation.

    ``low_priority`` runs it at nice 19 (idle-night work beside playback); the kernel's I/O
    scheduler derives the lowest best-effort I/O priority from that nice value."""
    # asyncio is imported where a coroutine needs it (its event loop has loaded it by then), not with the
    # module: `djamms-edge analyze FILE` imports this one for MediaError and media_input, and runs no loop.
    import asyncio

    if low_priority:
        argv = ["nice", "-n", "19", *argv]  # exec's ffmpeg in place: same pid, same process group
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # own process group: we can stop it and anything it spawned
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), limit_seconds)
    except TimeoutError:
        await asyncio.shield(_stop(proc))
        raise MediaError(f"{what}: {argv[0]} took longer than {limit_seconds:.0f}s and was stopped") from None
    except BaseException:
        await asyncio.shield(_stop(proc))
        raise
    assert proc.returncode is not None
    return RunResult(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


async def _stop(proc: asyncio.subprocess.Process) -> None:
    import asyncio

    if proc.returncode is not None:
        return
    for sig, grace in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(proc.wait(), grace)
            return
        except TimeoutError:
            log.warning("process group %d ignored SIGTERM; killing it", proc.pid)


@dataclass(frozen=True, slots=True)
class Seek:
    """Which part of the input to decode: from ``start`` for ``length`` seconds, or the ``last`` seconds."""

    start: float | None = None
    length: float | None = None
    last: float | None = None


def _input_args(inp: MediaInput, seek: Seek) -> list[str]:
    args = ["-protocol_whitelist", inp.protocols]
    if inp.is_remote:
        # A dropped connection mid-file is retried by ffmpeg's HTTP layer instead of reading as EOF.
        args += ["-reconnect", "1", "-reconnect_on_network_error", "1", "-reconnect_delay_max", "4"]
    if seek.start is not None and seek.start > 0:
        args += ["-ss", f"{seek.start:.3f}"]  # before -i: the demuxer seeks, nothing before is decoded
    if seek.last is not None:
        args += ["-sseof", f"{-seek.last:.3f}"]  # the last N seconds, without knowing the duration first
    if seek.length is not None:
        args += ["-t", f"{seek.length:.3f}"]
    return [*args, "-i", inp.url]


async def filter_audio(
    inp: MediaInput,
    audio_filter: str,
    *,
    seek: Seek | None = None,
    limit_seconds: float,
    low_priority: bool = False,
) -> RunResult:
    """Decode the first audio stream only (all of it, or the part ``seek`` says) through ``audio_filter``.
    Its filters log to stderr; ``-progress`` reports on stdout how far decoding got."""
    argv = [
        FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-v", "info", "-progress", "pipe:1",
        *_input_args(inp, seek or Seek()),
        "-map", "0:a:0", "-vn", "-sn", "-dn", "-af", audio_filter, "-f", "null", "-",
    ]  # fmt: skip
    return await _checked(inp, argv, limit_seconds, low_priority)


async def _checked(inp: MediaInput, argv: list[str], limit_seconds: float, low_priority: bool) -> RunResult:
    result = await run(argv, limit_seconds=limit_seconds, what=inp.name, low_priority=low_priority)
    if result.returncode != 0:
        raise MediaError(f"{inp.name}: {summarize_error(result.stderr)}")
    return result


async def render(
    dest: Path,
    output_args: Sequence[str],
    *,
    files: Sequence[Path] = (),
    lavfi: Sequence[str] = (),
    limit_seconds: float,
) -> None:
    """Write ``dest`` from local files and lavfi source graphs (in that input order): generated media."""
    argv = [FFMPEG, "-hide_banner", "-nostdin", "-v", "error", "-y"]
    for path in files:
        argv += ["-i", f"file:{path}"]
    for graph in lavfi:
        argv += ["-f", "lavfi", "-i", graph]
    argv += [*output_args, f"file:{dest}"]
    result = await run(argv, limit_seconds=limit_seconds, what=str(dest))
    if result.returncode != 0:
        raise MediaError(f"rendering {dest.name} failed: {summarize_error(result.stderr)}")


async def run_reference_tool(argv: Sequence[str], *, limit_seconds: float) -> RunResult:
    """Run an ffmpeg/ffprobe command line as given (the benchmark's reference and baseline)."""
    if argv[0] not in (FFMPEG, FFPROBE):
        raise ValueError("only ffmpeg and ffprobe run here")
    return await run(argv, limit_seconds=limit_seconds, what=argv[0])


async def ffmpeg_version() -> str | None:
    """ffmpeg's version (``5.1.8-0+deb12u1``), or None when it cannot be run."""
    try:
        result = await run([FFMPEG, "-hide_banner", "-version"], limit_seconds=20, what="ffmpeg -version")
    except (OSError, MediaError):  # not installed, not executable, hung
        return None
    first = result.stdout.splitlines()[0] if result.returncode == 0 and result.stdout else ""
    words = first.split()
    return words[2] if len(words) > 2 and words[:2] == ["ffmpeg", "version"] else None
