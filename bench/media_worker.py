"""The cost of the media worker boundary (edge/media/worker.py): what a job in a child process costs.

1. Per kind of job (a fast cue analysis of a 60 s AAC track, the night's full pass, a yt-dlp download of
   it from a loopback HTTP server): wall time through a worker beside the same work in this process with
   its libraries already loaded (the boundary's price: starting Python, importing PyAV or yt-dlp, the JSON
   each way), and the worker's peak RSS (ru_maxrss of the reaped child: the worker, or an ffmpeg it ran).
2. The cue points found through a worker beside those found in this process (bench/analysis.py's way),
   over generated tracks and, when bench/analysis.py has unpacked them, the real recordings: identical.

    .venv/bin/python bench/media_worker.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Only what a job needs at the top: ru_maxrss counts a child's pages from before its exec too, so the process
# that starts the measured worker must stay smaller than the worker (the rest is imported in main()).
from djamms_edge.edge.media import worker  # noqa: E402
from djamms_edge.edge.media.config import AnalysisConfig, FetchConfig  # noqa: E402
from djamms_edge.edge.media.fetcher import YtDlpFetcher  # noqa: E402
from djamms_edge.shared.ids import parse_source  # noqa: E402

KINDS = ("analysis", "full analysis", "download")


async def one_job(kind: str, track: Path, url: str, scratch: Path) -> None:
    config = AnalysisConfig()
    if kind == "analysis":
        await worker.analyze(track, config)
    elif kind == "full analysis":
        await worker.analyze(track, config, full=True)
    else:
        fetcher = YtDlpFetcher(FetchConfig(mode="audio", attempts=1, allowed_hosts=("127.0.0.1",)), scratch)
        (await fetcher.fetch(parse_source(url), scratch / "fetched")).path.unlink()


def in_a_fresh_process(kind: str, track: Path, url: str, scratch: Path) -> tuple[float, float]:
    """Wall time of one job through a worker and the worker's peak RSS (MiB), from a process that ran no other
    child (so ru_maxrss is that worker's, or its ffmpeg's)."""
    argv = [sys.executable, __file__, "--one", kind, str(track), url, str(scratch)]
    answer = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
    return answer["seconds"], answer["peak_mib"]


async def in_this_process(kind: str, track: Path) -> float:
    """The same work with the libraries loaded here already (the download is not timed: yt-dlp's own time
    dominates it either way)."""
    from djamms_edge.edge.media import analyzer

    started = time.perf_counter()
    await analyzer.analyze(track, AnalysisConfig(), full=kind == "full analysis")
    return time.perf_counter() - started


async def compare_cues(files: list[Path]) -> tuple[int, list[str]]:
    from djamms_edge.edge.media import analyzer

    differing = []
    for path in files:
        for full in (False, True):
            here = await analyzer.analyze(path, AnalysisConfig(), full=full)
            there = await worker.analyze(path, AnalysisConfig(), full=full)
            if here != there:
                differing.append(f"{path.name} ({'full' if full else 'fast'}): {here} != {there}")
    return 2 * len(files), differing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--music", type=Path, default=REPO / "var" / "bench-music")
    parser.add_argument("--one", nargs=4, metavar=("KIND", "TRACK", "URL", "SCRATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, track, url, scratch = args.one
        started = time.perf_counter()
        asyncio.run(one_job(kind, Path(track), url, Path(scratch)))
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(json.dumps({"seconds": seconds, "peak_mib": peak}))
        return
    from real_music import recordings
    from transitions import serving

    from djamms_edge.edge.player.seams import render_tone

    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        root = Path(tmp)
        track = root / "track.m4a"
        asyncio.run(render_tone(track, 440, lead=1.0, tone=58.0, trail=1.0))
        (root / "scratch").mkdir()
        print(f"one job per worker, {args.runs} runs each (median), on a 60 s AAC track")
        print(f"{'job':<14} {'in this process s':>18} {'in a worker s':>14} {'boundary s':>11} "
              f"{'worker peak RSS MiB':>20}")
        with serving(root) as base:
            for kind in KINDS:
                runs = [in_a_fresh_process(kind, track, f"{base}/track.m4a", root / "scratch")
                        for _ in range(args.runs)]
                there = statistics.median(s for s, _ in runs)
                peak = max(p for _, p in runs)
                if kind == "download":
                    print(f"{kind:<14} {'-':>18} {there:>14.3f} {'-':>11} {peak:>20.1f}")
                    continue
                here = statistics.median(asyncio.run(in_this_process(kind, track)) for _ in range(args.runs))
                print(f"{kind:<14} {here:>18.3f} {there:>14.3f} {there - here:>11.3f} {peak:>20.1f}")
        files = [track]
        if args.music.is_dir():
            files += list(recordings(args.music))
        checked, differing = asyncio.run(compare_cues(files))
        print(f"\ncue points through a worker vs in this process: {checked - len(differing)} of {checked} identical"
              f" ({len(files)} files, fast and full passes)")
        if len(files) == 1:
            print(f"  (no real recordings in {args.music}: bench/analysis.py unpacks them)")
        for line in differing:
            print(f"  DIFFERS {line}")


if __name__ == "__main__":
    main()
