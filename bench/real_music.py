"""bench/analysis.py, part 1: our cue analysis on real recordings, side by side with a full decode and the
reference's command, and held to the full-decode 10 ms RMS reading.

The recordings come from Debian packages of game music (DFSG-free: GPL/CC licences, see each package's
copyright file): used where installed, else fetched with ``apt-get download`` and unpacked with
``dpkg-deb -x`` into ``--music`` (about 80 MB, once). Targets (issue 14): >= 90 % of cue-outs within
150 ms and of cue-ins within 100 ms of the reading; no 10 ms window over -50 dBFS after a cue-out;
<= 0.5x a full decode per track; a one-file CLI call <= 0.3 s above the analysis itself.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

from djamms_edge.edge.media import ffmpeg
from djamms_edge.edge.media.analyzer import analyze
from djamms_edge.edge.media.config import AnalysisConfig
from tests.edge.media.rms_reference import Levels, decode, levels, tool

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
    def ac_error_out(self) -> float:
        return self.cue_out - self.ac_reading.cues(-60.0)[1]

    @property
    def ac_loudest_after(self) -> float:
        return self.ac_reading.loudest_after(self.cue_out)


async def _timed(job: Awaitable[object]) -> float:
    started = time.perf_counter()
    await job
    return time.perf_counter() - started


async def measure(path: Path, config: AnalysisConfig, with_reference: bool) -> Row:
    """Ours, a full decode and the reference's command on one file, one after the other (same load). The
    reference's command prints every audio frame's time (a minute per track on a loaded machine): run
    only on some files, its time is NaN on the others."""
    full = ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-vn", "-f", "null", "-"]
    graph = f"amovie={path},astats=metadata=1:reset=1,silencedetect=noise=-30dB:d=2"
    reference = ["ffprobe", "-f", "lavfi", "-i", graph, "-show_entries", "frame=pts_time", "-of", "csv=p=0"]
    started = time.perf_counter()
    result = await analyze(path, config)
    ours_time = time.perf_counter() - started
    full_time = await _timed(ffmpeg.run_reference_tool(full, limit_seconds=600))
    reference_time = math.nan
    if with_reference:
        reference_time = await _timed(ffmpeg.run_reference_tool(reference, limit_seconds=600))
    samples, rate = await asyncio.to_thread(decode, path)
    return Row(path, ours_time, full_time, reference_time, result.real_start_offset, result.real_end_offset,
               levels(samples, rate), levels(samples, rate, without_dc=True))


async def cli_overhead(files: list[Path], config: AnalysisConfig) -> list[tuple[float, float]]:
    """(wall of one ``djamms-edge analyze FILE`` process, wall of analyze() on it in this warm process)."""
    pairs = []
    cli = [str(Path(sys.executable).with_name("djamms-edge")), "analyze"]
    for path in files:
        started = time.perf_counter()
        await asyncio.to_thread(subprocess.run, [*cli, str(path)], check=True, capture_output=True)
        call = time.perf_counter() - started
        alone = await _timed(analyze(path, config))
        pairs.append((call, alone))
    return pairs


def _share(values: list[bool]) -> str:
    return f"{sum(values)}/{len(values)} ({100 * sum(values) / len(values):.0f} %)"


async def bench_real(cache: Path, reference_every: int) -> None:
    config = AnalysisConfig()
    real = recordings(cache)
    by_name = {p.name: p for p in real}
    print("deriving hard cases ...", file=sys.stderr, flush=True)
    derived = await derive([by_name[name] for name in DERIVE_FROM if name in by_name], cache / "derived")
    await analyze(real[0], config)  # calibrates once per process, like the daemon; warms the page cache
    rows: list[tuple[str, Row]] = []
    for kind, files in (("real", real), ("derived", derived)):
        for index, path in enumerate(files):
            print(f"  {path.name} ...", file=sys.stderr, flush=True)
            rows.append((kind, await measure(path, config, index % reference_every == 0)))

    print(f"bench/analysis.py part 1: {len(real)} real recordings ({', '.join(PACKAGES)}),"
          f" {len(derived)} derived from {len(DERIVE_FROM)} of them")
    print("machine: 2 cores shared with 7 other engineers' work; compare the ratios, measured side by side\n")
    header = (f"{'file':42} {'dur s':>7} {'ours s':>7} {'full s':>7} {'ref s':>7} {'ours/full':>9}"
              f" {'in err ms':>9} {'out err ms':>10} {'max after dB':>12} {'no-DC out err':>13} {'after':>6}")
    print(header)
    for _, row in rows:
        print(f"{row.path.name[:42]:42} {row.reading.duration:7.1f} {row.ours:7.3f} {row.full:7.3f}"
              f" {row.reference:7.3f} {row.ours / row.full:9.2f} {1000 * row.error_in:+9.0f}"
              f" {1000 * row.error_out:+10.0f} {row.loudest_after:12.1f} {1000 * row.ac_error_out:+13.0f}"
              f" {row.ac_loudest_after:6.1f}")
    print()
    for kind in ("real", "derived", "all"):
        chosen = [row for k, row in rows if kind in ("all", k)]
        ratios = [row.ours / row.full for row in chosen]
        outs = [abs(row.error_out) for row in chosen]
        print(f"{kind:8} n={len(chosen):2}  ours/full decode: median {statistics.median(ratios):.2f}x"
              f" (p90 {sorted(ratios)[math.ceil(0.9 * len(ratios)) - 1]:.2f}x);"
              f" ours/reference command: median"
              f" {statistics.median(r.ours / r.reference for r in chosen if r.reference == r.reference):.3f}x")
        print(f"{'':8} cue-outs within 150 ms: {_share([e <= CUE_OUT_TOLERANCE for e in outs])},"
              f" cue-ins within 100 ms: {_share([abs(r.error_in) <= CUE_IN_TOLERANCE for r in chosen])},"
              f" |cue-out error| median {1000 * statistics.median(outs):.0f} ms,"
              f" windows over -50 dBFS after a cue-out: {sum(r.loudest_after > AUDIBLE_DB for r in chosen)}")
        ac_outs = [abs(row.ac_error_out) for row in chosen]
        print(f"{'':8} against the reading without DC offset: cue-outs within 150 ms:"
              f" {_share([e <= CUE_OUT_TOLERANCE for e in ac_outs])}, |cue-out error| median"
              f" {1000 * statistics.median(ac_outs):.0f} ms, windows over -50 dBFS after a cue-out:"
              f" {sum(r.ac_loudest_after > AUDIBLE_DB for r in chosen)}")
    pairs = await cli_overhead(real[:5], config)
    extra = [call - alone for call, alone in pairs]
    print(f"\none-file CLI call: median {statistics.median(c for c, _ in pairs):.3f} s, the analysis in a warm"
          f" process {statistics.median(a for _, a in pairs):.3f} s: {statistics.median(extra):.3f} s above it"
          f" (Python start-up and imports;"
          f" the first analysis of a process also calibrates the box, in the same ffmpeg run)\n")
