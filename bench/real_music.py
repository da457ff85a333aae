"""bench/analysis.py, part 1: our cue analysis on real recordings, side by side with a full decode and the
reference's command, and held to the full-decode 10 ms RMS reading.

Two readings, both printed: the plain 10 ms RMS of the full decode, and the same with each window's
mean (its DC offset) taken out. The second is the one a listener agrees with: a DC offset is a constant
voltage, not a sound (no speaker makes it audible, and a venue's amplifier blocks it), yet some MP3s end
in seconds of a -44 dBFS offset that the plain reading counts as sound. Our analysis high-passes at
80 Hz, so it ignores DC too; the plain reading is printed beside it so nothing is hidden.

The recordings come from Debian packages of game music (DFSG-free: GPL/CC licences, see each package's
copyright file): used where installed, else fetched with ``apt-get download`` and unpacked with
``dpkg-deb -x`` into ``--music`` (about 80 MB, once). Targets (issue 14): >= 90 % of cue-outs within
150 ms and of cue-ins within 100 ms of the reading; no 10 ms window over -50 dBFS after a cue-out;
<= 0.5x a full decode per track; a one-file CLI call <= 0.3 s above the analysis itself.
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

import av

from djamms_edge.edge.media import ffmpeg
from djamms_edge.edge.media.analyzer import analyze
from djamms_edge.edge.media.config import AnalysisConfig
from tests.edge.media.rms_reference import Levels, decode, levels, tool

REPO = Path(__file__).resolve().parents[1]

# package: the music files in it (a glob under its root)
PACKAGES = {
    "pushover-data": "usr/share/pushover/themes/*.ogg",
    "frozen-bubble-data": "usr/share/games/frozen-bubble/snd/*zik*.ogg",
    "asc-music": "usr/share/games/asc/music/*.mp3",
    "powermanga-data": "usr/share/games/powermanga/sound/handheld_console/music_*.ogg",
    "pangzero": "usr/share/perl5/auto/share/dist/Games-PangZero/*.mp3",
    "funnyboat": "usr/share/games/funnyboat/data/JDruid*.ogg",
}
# Tracks the hard cases are derived from (ones with natural endings).
DERIVE_FROM = ("frozen-mainzik-1p.ogg", "music_congratulations.ogg", "UPiPang.mp3", "castle.ogg")
HISS_RMS_DB = -68.0
CUE_OUT_TOLERANCE, CUE_IN_TOLERANCE, AUDIBLE_DB = 0.150, 0.100, -50.0


def recordings(cache: Path) -> list[Path]:
    """Every music file of PACKAGES, from the installed package or one unpacked into ``cache``."""
    found: list[Path] = []
    for package, pattern in PACKAGES.items():
        installed = sorted(Path("/").glob(pattern))
        if not installed:
            root = cache / package
            if not root.exists():
                print(f"fetching {package} ...", file=sys.stderr, flush=True)
                download = cache / "debs"
                download.mkdir(parents=True, exist_ok=True)
                subprocess.run([tool("apt-get"), "download", package], cwd=download, check=True, capture_output=True)
                deb = next(download.glob(f"{package}_*.deb"))
                subprocess.run([tool("dpkg-deb"), "-x", str(deb), str(root)], check=True)
            installed = sorted(root.glob(pattern))
        found += installed
    return found


async def derive(sources: list[Path], directory: Path) -> list[Path]:
    """From each source: 2 s + music + 6 s of digital silence (FLAC), the same padding of hiss at -68 dBFS
    RMS (Gaussian, so its peaks cross -60 dBFS), and the digital padding re-encoded to Opus and AAC.
    Kept in ``directory`` for the next run."""
    made: list[Path] = []
    sigma = 10 ** (HISS_RMS_DB / 20)
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    pad = "aformat=channel_layouts=stereo,adelay=2000:all=1,apad=pad_dur=6"
    noise = f"aevalsrc={sigma:.3g}*sqrt(-2*log(random(0)))*cos(2*PI*random(1)):s=44100:c=stereo"
    mix = f"[0:a]{pad}[m];[1:a]aformat=channel_layouts=stereo[n];[m][n]amix=normalize=0:duration=first"
    for source in sources:
        padded = directory / f"{source.stem}+silence.flac"
        # (file, output options, inputs, lavfi inputs), in order: the re-encodes read the padded file
        jobs = [
            (padded, ["-af", pad, "-c:a", "flac"], [source], []),
            (directory / f"{source.stem}+hiss.flac", ["-filter_complex", mix, "-c:a", "flac"], [source], [noise]),
            (directory / f"{source.stem}+silence.opus.webm", ["-c:a", "libopus", "-b:a", "128k"], [padded], []),
            (directory / f"{source.stem}+silence.aac.m4a", ["-c:a", "aac", "-b:a", "160k"], [padded], []),
        ]
        for dest, options, files, lavfi in jobs:
            if not dest.exists():
                partial = dest.with_name("partial-" + dest.name)
                await ffmpeg.render(partial, options, files=files, lavfi=lavfi, limit_seconds=600)
                partial.rename(dest)
            made.append(dest)
    return made


@dataclass
class Row:
    path: Path
    ours: float
    full: float
    in_process: float  # a full decode in this process (PyAV), without our analysis
    reference: float
    cue_in: float
    cue_out: float
    reading: Levels
    ac_reading: Levels  # the same without each window's DC offset

    @property
    def expected(self) -> tuple[float, float]:
        return self.reading.cues(-60.0)

    @property
    def error_in(self) -> float:
        return self.cue_in - self.expected[0]

    @property
    def error_out(self) -> float:
        return self.cue_out - self.expected[1]

    @property
    def loudest_after(self) -> float:
        return self.reading.loudest_after(self.cue_out)

    @property
    def ac_error_in(self) -> float:
        return self.cue_in - self.ac_reading.cues(-60.0)[0]

    @property
    def ac_error_out(self) -> float:
        return self.cue_out - self.ac_reading.cues(-60.0)[1]

    @property
    def ac_loudest_after(self) -> float:
        return self.ac_reading.loudest_after(self.cue_out)


async def _timed(job: Awaitable[object]) -> float:
    started = time.perf_counter()
    await job
    return time.perf_counter() - started


async def measure(path: Path, config: AnalysisConfig, with_reference: bool, rounds: int) -> Row:
    """Ours, a full decode and a full decode in this process, taking turns for ``rounds`` rounds (the same
    load hits all three; each time is the median), then the reference's command once. It prints every
    audio frame's time (a minute per track on a loaded machine): run only on some files, its time is NaN
    on the others."""
    full = ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-vn", "-f", "null", "-"]
    graph = f"amovie={path},astats=metadata=1:reset=1,silencedetect=noise=-30dB:d=2"
    reference = ["ffprobe", "-f", "lavfi", "-i", graph, "-show_entries", "frame=pts_time", "-of", "csv=p=0"]
    times: dict[str, list[float]] = {"ours": [], "full": [], "in_process": []}
    for _ in range(rounds):
        started = time.perf_counter()
        result = await analyze(path, config)
        times["ours"].append(time.perf_counter() - started)
        times["full"].append(await _timed(ffmpeg.run_reference_tool(full, limit_seconds=600)))
        times["in_process"].append(await _timed(decode_all_in_process(path)))
    ours, full_time, in_process = (statistics.median(times[key]) for key in ("ours", "full", "in_process"))
    reference_time = math.nan
    if with_reference:
        reference_time = await _timed(ffmpeg.run_reference_tool(reference, limit_seconds=600))
    samples, rate = await asyncio.to_thread(decode, path)
    return Row(path, ours, full_time, in_process, reference_time, result.real_start_offset,
               result.real_end_offset, levels(samples, rate), levels(samples, rate, without_dc=True))


async def decode_all_in_process(path: Path) -> None:
    """Every audio frame decoded by FFmpeg's libraries in this process (PyAV, what our decoder uses), and
    dropped: ``-f null`` without the start-up. It shows the saving from reading only the two ends apart
    from the saving of an ffmpeg start-up."""

    def run() -> None:
        with av.open(f"file:{path}", options={"protocol_whitelist": "file"}) as container:
            for _ in container.decode(container.streams.audio[0]):
                pass

    await asyncio.to_thread(run)


async def cli_overhead(files: list[Path], config: AnalysisConfig, rounds: int = 3) -> list[tuple[float, float]]:
    """(wall of one ``djamms-edge analyze FILE`` process, wall of analyze() on it in this warm process), ``rounds``
    times per file, taking turns. Our bytecode is compiled first, as pip does on a box: shells here set
    PYTHONDONTWRITEBYTECODE=1, and a call would otherwise compile our sources again. bench/cli_start.py breaks
    the difference down (and measures the call as the .deb installs it)."""
    await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "compileall", "-q", str(REPO / "djamms_edge")],
                            check=True)
    pairs = []
    cli = [str(Path(sys.executable).with_name("djamms-edge")), "analyze"]
    for _ in range(rounds):
        for path in files:
            started = time.perf_counter()
            await asyncio.to_thread(subprocess.run, [*cli, str(path)], check=True, capture_output=True)
            call = time.perf_counter() - started
            alone = await _timed(analyze(path, config))
            pairs.append((call, alone))
    return pairs


def _p90(values: list[float]) -> float:
    return sorted(values)[math.ceil(0.9 * len(values)) - 1]


def _share(values: list[bool]) -> str:
    return f"{sum(values)}/{len(values)} ({100 * sum(values) / len(values):.0f} %)"


async def bench_real(cache: Path, reference_every: int, rounds: int) -> None:
    config = AnalysisConfig()
    real = recordings(cache)
    by_name = {p.name: p for p in real}
    print("deriving hard cases ...", file=sys.stderr, flush=True)
    derived = await derive([by_name[name] for name in DERIVE_FROM if name in by_name], cache / "derived")
    await analyze(real[0], config)  # loads the libraries once per process, like the daemon; warms the page cache
    rows: list[tuple[str, Row]] = []
    for kind, files in (("real", real), ("derived", derived)):
        for index, path in enumerate(files):
            print(f"  {path.name} ...", file=sys.stderr, flush=True)
            rows.append((kind, await measure(path, config, index % reference_every == 0, rounds)))

    print(f"bench/analysis.py part 1: {len(real)} real recordings ({', '.join(PACKAGES)}),"
          f" {len(derived)} derived from {len(DERIVE_FROM)} of them")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores);"
          " compare the ratios, measured side by side, track by track\n")
    print("ours: analyze() in this process; full: `ffmpeg -i FILE -vn -f null -` (the issue's baseline);"
          " in-proc: a full decode by our own decoder (PyAV), for comparison (medians of"
          f" {rounds} rounds taking turns); ref: the reference's command (once).")
    print("errors in ms against the full-decode 10 ms RMS -60 dBFS reading without DC offset (the one a listener"
          " agrees with), and in brackets against the plain reading (which counts a DC offset as sound)\n")
    header = (f"{'file':40} {'dur s':>6} {'ours s':>7} {'full s':>7} {'in-proc':>7} {'ref s':>7} {'ours/full':>9}"
              f" {'in err':>6} {'(plain)':>7} {'out err':>7} {'(plain)':>7} {'after dB':>8} {'(plain)':>7}")
    print(header)
    for _, row in rows:
        print(f"{row.path.name[:40]:40} {row.reading.duration:6.1f} {row.ours:7.3f} {row.full:7.3f}"
              f" {row.in_process:7.3f} {row.reference:7.3f} {row.ours / row.full:9.2f}"
              f" {1000 * row.ac_error_in:+6.0f} {1000 * row.error_in:+7.0f}"
              f" {1000 * row.ac_error_out:+7.0f} {1000 * row.error_out:+7.0f}"
              f" {row.ac_loudest_after:8.1f} {row.loudest_after:7.1f}")
    print()
    for kind in ("real", "derived", "all"):
        chosen = [row for k, row in rows if kind in ("all", k)]
        ratios = sorted(row.ours / row.full for row in chosen)
        in_process = sorted(row.ours / row.in_process for row in chosen)
        timed_reference = [r.ours / r.reference for r in chosen if r.reference == r.reference]
        print(f"{kind:8} n={len(chosen):2}  ours/full decode per track: median {statistics.median(ratios):.2f}x,"
              f" p90 {_p90(ratios):.2f}x, max {ratios[-1]:.2f}x;"
              f" ours/in-process full decode: median {statistics.median(in_process):.2f}x"
              f" (p90 {_p90(in_process):.2f}x);"
              f" ours/reference command: median {statistics.median(timed_reference):.3f}x (n={len(timed_reference)})")
        for label, error_in, error_out, after in (
            ("reading without DC", "ac_error_in", "ac_error_out", "ac_loudest_after"),
            ("plain reading     ", "error_in", "error_out", "loudest_after"),
        ):
            outs = [abs(getattr(row, error_out)) for row in chosen]
            print(f"{'':8} {label}: cue-outs within 150 ms: {_share([e <= CUE_OUT_TOLERANCE for e in outs])},"
                  f" cue-ins within 100 ms:"
                  f" {_share([abs(getattr(r, error_in)) <= CUE_IN_TOLERANCE for r in chosen])},"
                  f" |cue-out error| median {1000 * statistics.median(outs):.0f} ms,"
                  f" windows over -50 dBFS after a cue-out: {sum(getattr(r, after) > AUDIBLE_DB for r in chosen)}")
    pairs = await cli_overhead(real[:5], config)
    extra = [call - alone for call, alone in pairs]
    print(f"\none-file CLI call: median {statistics.median(c for c, _ in pairs):.3f} s, the analysis in a warm"
          f" process {statistics.median(a for _, a in pairs):.3f} s: {statistics.median(extra):.3f} s above it"
          f" (Python start-up and imports, PyAV's included; bench/cli_start.py breaks it down)\n")
