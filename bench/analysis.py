"""Cue-point analysis: the reference's ffprobe command vs. a full audio decode vs. ours.

Part 1 (bench/real_music.py): >= 20 real recordings from Debian's game-music packages, and hard cases
derived from some of them (digital-silence and hiss padding, Opus and AAC re-encodes): per-track
time of the three side by side, our cue errors against the full-decode 10 ms RMS reading
(tests/edge/media/rms_reference.py), and a one-file ``djamms-edge analyze`` call against the
analysis itself.

Part 2, one generated 4-minute video (640x360 H.264 at 25 fps + AAC stereo, 240 s): 1.5 s of silence,
music with a 1.5 s break in the middle, a 10 s fade-out ending at 228.0 s, then silence.
Truth: realStartOffset 1.5 s, realEndOffset 228.0 s (the -60 dBFS point lies ~20 ms earlier).

(a) the reference's command, adapted only as ffmpeg 5 requires (``pkt_pts_time`` is now ``pts_time``);
    its answer is the last number it prints, as the reference took it;
(b) a full decode of the audio stream: ``ffmpeg -i FILE -vn -f null -``;
(c) ours: ``analyze()`` (head + tail windows decoded in this process), and for information the idle-night
    full pass (which adds an ffmpeg EBU R128 pass over everything).

    .venv/bin/python bench/analysis.py [--runs 7] [--reference-runs 3] [--reference-every 4] [--track-rounds 3]
                                       [--video PATH] [--real-only | --generated-only]

The figures issue 14 asks for (about 4 minutes on a quiet 2-core machine, the first run also fetching
and unpacking ~80 MB of Debian packages into var/bench-music):

    .venv/bin/python bench/analysis.py --reference-every 8 --runs 5 --reference-runs 1
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_music import bench_real  # noqa: E402

from djamms_edge.edge.media import ffmpeg  # noqa: E402
from djamms_edge.edge.media.analyzer import analyze  # noqa: E402
from djamms_edge.edge.media.config import AnalysisConfig  # noqa: E402
from djamms_edge.edge.media.ffparse import parse_silences  # noqa: E402
from djamms_edge.edge.media.synth import SynthTrack, fade, render, silence, tone  # noqa: E402

MUSIC_VIDEO = SynthTrack(
    (silence(1.5), tone(110.0), tone(8.0, 0.15), silence(1.5), tone(97.0), fade(10.0), silence(12.0))
)
TRUE_START, TRUE_END = 1.5, 228.0


Answer = tuple[float | None, float | None]


def cpu_time() -> float:
    """CPU used so far by this process (ours decodes here) and by the ffmpeg/ffprobe processes it waited for."""
    usages = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(usage.ru_utime + usage.ru_stime for usage in usages)


Job = Callable[[], Awaitable[Answer]]


async def timed(rows: list[tuple[str, int, Job]]) -> list[tuple[str, int, float, float, Answer]]:
    """Median wall and CPU time (this process's and its ffmpeg processes') of each job, and its last answer.

    Jobs take turns, round after round, so a change in the machine's load hits them all alike."""
    walls: dict[str, list[float]] = {label: [] for label, _, _ in rows}
    cpus: dict[str, list[float]] = {label: [] for label, _, _ in rows}
    answers: dict[str, Answer] = {}
    for round_number in range(max(n for _, n, _ in rows)):
        for label, runs, job in rows:
            if round_number >= runs:
                continue
            started, cpu = time.perf_counter(), cpu_time()
            answers[label] = await job()
            walls[label].append(time.perf_counter() - started)
            cpus[label].append(cpu_time() - cpu)
    return [
        (label, n, statistics.median(walls[label]), statistics.median(cpus[label]), answers[label])
        for label, n, _ in rows
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--reference-runs", type=int, default=3)
    parser.add_argument("--video", type=Path, help="reuse (or create) the generated video at this path")
    parser.add_argument("--music", type=Path, default=REPO / "var" / "bench-music",
                        help="where the Debian music packages are downloaded and unpacked (when not installed)")
    parser.add_argument("--real-only", action="store_true", help="skip the generated video")
    parser.add_argument("--generated-only", action="store_true", help="skip the real recordings")
    parser.add_argument("--track-rounds", type=int, default=3,
                        help="per recording, ours and the full decodes take turns this often (medians)")
    parser.add_argument("--reference-every", type=int, default=4,
                        help="run the reference's (slow) command on every n-th recording")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        if not args.generated_only:
            await bench_real(args.music, args.reference_every, args.track_rounds)
        if args.real_only:
            return
        video = args.video or Path(scratch) / "music_video.mp4"
        if not video.exists():
            print("generating the 4-minute music video ...", file=sys.stderr, flush=True)
            made = await render(MUSIC_VIDEO, video.parent, video.stem, ("mp4",), channels=2, video_size="640x360")
            made["mp4"].rename(video)
        await bench(video, args.runs, args.reference_runs)


async def bench(video: Path, runs: int, reference_runs: int) -> None:
    config = AnalysisConfig()
    reference_cut: list[float] = []

    async def reference() -> tuple[float | None, float | None]:
        graph = f"amovie={video},astats=metadata=1:reset=1,silencedetect=noise=-30dB:d=2"
        argv = ["ffprobe", "-f", "lavfi", "-i", graph, "-show_entries", "frame=pts_time", "-of", "csv=p=0"]
        result = await ffmpeg.run_reference_tool(argv, limit_seconds=300)
        numbers = [float(line) for line in result.stdout.split() if _is_number(line)]
        trailing = [s.start for s in parse_silences(result.stderr)]
        reference_cut[:] = trailing[-1:]
        return None, (numbers[-1] if numbers else None)

    async def full_decode() -> tuple[float | None, float | None]:
        argv = ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", str(video), "-vn", "-f", "null", "-"]
        await ffmpeg.run_reference_tool(argv, limit_seconds=300)
        return None, None

    async def ours() -> tuple[float | None, float | None]:
        result = await analyze(video, config)
        return result.real_start_offset, result.real_end_offset

    async def ours_full() -> tuple[float | None, float | None]:
        result = await analyze(video, config, full=True)
        return result.real_start_offset, result.real_end_offset

    await ours()  # warm the page cache so nobody pays for the first read from disk
    rows: list[tuple[str, int, Job]] = [
        ("(a) reference: ffprobe amovie+astats+silencedetect", reference_runs, reference),
        ("(b) full audio decode: ffmpeg -vn -f null -", runs, full_decode),
        ("(c) ours: head 8 s + tail 15 s, in-process", runs, ours),
        ("    ours --full (idle nights: + EBU R128 pass)", max(3, runs // 2), ours_full),
    ]
    results = await timed(rows)
    ours_median = results[2][2]

    size_mb = (await asyncio.to_thread(video.stat)).st_size / 1e6
    print(f"bench/analysis.py: {video.name}, 240 s, 640x360 H.264 + AAC stereo, {size_mb:.1f} MB")
    print(f"truth: realStartOffset {TRUE_START:.3f} s, realEndOffset {TRUE_END:.3f} s\n")
    header = f"{'':50} {'wall':>8} {'÷ ours':>7} {'cpu':>8} {'runs':>4} {'start':>7} {'end':>8} {'end error':>9}"
    print(header)
    for label, n, median, cpu, (start, end) in results:
        ratio = median / ours_median
        start_text = "-" if start is None else f"{start:.3f}"
        end_text = "-" if end is None else f"{end:.3f}"
        error = "-" if end is None else f"{end - TRUE_END:+.3f}s"
        print(f"{label:50} {median:7.3f}s {ratio:6.1f}x {cpu:7.3f}s {n:4d} {start_text:>7} {end_text:>8} {error:>9}")
    print()
    print("wall and cpu are medians; cpu counts this process (ours decodes in it) and the ffmpeg/ffprobe processes.")
    if reference_cut:
        print(f"(a) prints frame times, so its answer is the last frame ({results[0][4][1]:.3f} s), not where the")
        print(f"    silence begins; read properly, its -30 dB silencedetect would cut at {reference_cut[0]:.3f} s,")
        print(f"    {TRUE_END - reference_cut[0]:.2f} s into the audible fade-out.")
    print(
        f"ours: {results[0][2] / ours_median:.0f}x faster than (a), {results[1][2] / ours_median:.2f}x as fast as"
        f" a full decode (b), using {results[2][3] / results[1][3]:.2f}x its CPU time."
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


if __name__ == "__main__":
    asyncio.run(main())
