"""Transitions and footprint of the playback engine.

1. Seams: three generated tracks (a sine each, 2 s of silence before and 3 s after) play
   through the real engine and libmpv into an ao=pcm capture, once with cues from the media
   analysis (trimmed) and once from 0 to the end (untrimmed, the baseline). Printed: the
   silence a listener hears at each transition, how much silence the cues left in, and the
   largest difference (the player's own gap; <= 0 means it adds none). A third run takes cues
   from the analysis without its 80 Hz high-pass, whose ringing delays the cue-out; a fourth
   plays H.264 clips in video mode (vo=null), where audio starts on a video frame.
2. Footprint: ``djamms-edge run`` playing audio in real time (ao=null, no video) for a while;
   its RSS, PSS and CPU beside a bare ``mpv`` CLI playing the same files (the baseline). Four runs of
   the daemon: in this virtualenv as it is; with only the packaged dependencies (the development extras,
   numpy among them, hidden: sqlite-utils imports numpy whenever it is installed, ~20 MB a box never
   has; the figure the target is about), at its first start (it creates its state files) and restarted
   (its files current, as on most days: no schema migration to apply, so no sqlite-utils); and the
   same after it downloaded two tracks from a loopback HTTP server and the night analysis measured them
   (fetching and analysis run in media worker processes, so what they load must not stay in the daemon);
   then a box with a real ``djamms-hub`` on loopback, playing the venue's playlist, started and restarted
   (the hub process shares libpython's and aiohttp's pages with it here, which lowers its PSS a little).

    .venv/bin/python bench/transitions.py [--seconds 10] [--footprint-only]
3. Seams on real music: clips ending in real recordings' natural endings (bench/real_music.py's Debian
   packages), trimmed by the analysis vs untrimmed.
Targets: seams <= 5 ms (generated tones), <= 10 ms (real music); RSS <= 110 MB (shown in MiB).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import http.server
import itertools
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hub_load import stop  # noqa: E402  -- the benches' one way to end a child's process group
from real_music import recordings  # noqa: E402

from djamms_edge.edge.media import synth  # noqa: E402
from djamms_edge.edge.media.config import AnalysisConfig  # noqa: E402
from djamms_edge.edge.player.capture import capture_playback  # noqa: E402
from djamms_edge.edge.player.resolver import LocalFileResolver  # noqa: E402
from djamms_edge.edge.player.seams import render_tone, seams, silent_runs  # noqa: E402
from djamms_edge.edge.queue.model import QueueEntry  # noqa: E402
from tests.edge.media.rms_reference import tool  # noqa: E402

LEAD, TONE, TRAIL = 2.0, 3.0, 3.0
FREQUENCIES = (300, 700, 1500)
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


async def measure_seams(root: Path) -> None:
    tracks = [root / f"{hz}.m4a" for hz in FREQUENCIES]
    await asyncio.gather(*(render_tone(p, hz, lead=LEAD, tone=TONE, trail=TRAIL) for p, hz in
                           zip(tracks, FREQUENCIES, strict=True)))
    playlist = root / "playlist.txt"
    playlist.write_text("".join(f"{p}\n" for p in tracks))
    print(f"seams: {len(tracks)} AAC tracks, {LEAD:g} s silence + {TONE:g} s tone + {TRAIL:g} s silence each")
    print(f"{'playback':<26} {'seam 1 ms':>10} {'seam 2 ms':>10} {'left in by cues ms':>19} "
          f"{'beyond cues ms':>15}")
    runs = (("untrimmed (baseline)", False, AnalysisConfig()), ("trimmed", True, AnalysisConfig()),
            ("trimmed, highpass_hz = 0", True, AnalysisConfig(highpass_hz=0.0)))
    for number, (label, trim, analysis) in enumerate(runs):
        resolver = LocalFileResolver(analysis, target_lufs=-14.0, max_gain_db=12.0, trim=trim)
        workdir = root / f"run{number}"
        workdir.mkdir()
        result = await capture_playback(workdir, playlist, resolver)
        found = [s.silence_ms for s in seams(result.capture)[:2]]
        cues = [await resolver.resolve(QueueEntry("bench", str(p))) for p in tracks]
        left_in = [((before.end or LEAD + TONE + TRAIL) - (LEAD + TONE) + LEAD - after.start) * 1000
                   for before, after in itertools.pairwise(cues)]
        own = max(f - max(0.0, cue) for f, cue in zip(found, left_in, strict=True))
        print(f"{label:<26} {found[0]:>10.1f} {found[1]:>10.1f} {max(left_in):>19.1f} {own:>15.1f}")
    (root / "video").mkdir()
    await measure_video_seams(root / "video")


REAL_ENDINGS = ("frozen-mainzik-1p.ogg", "music_congratulations.ogg", "UPiPang.mp3", "castle.ogg", "introzik.ogg")
REAL_LEAD, REAL_TAIL = 1.5, 12.0


async def measure_real_seams(root: Path, music: Path) -> None:
    """Junctions of real music: clips of 1.5 s of digital silence + the last 12 s of a real recording
    (its natural ending, reverb tail and all), played in a row through the engine and libmpv. A junction's
    silence is the longest run of samples under -60 dBFS that reaches within 50 ms of where one clip
    hands over to the next."""
    by_name = {p.name: p for p in recordings(music)}
    clips = []
    for name in REAL_ENDINGS:
        clip = root / f"{Path(name).stem}.flac"
        cut = ["-sseof", f"-{REAL_TAIL}", "-i", f"file:{by_name[name]}", "-af", f"adelay={REAL_LEAD * 1000:.0f}:all=1"]
        argv = [tool("ffmpeg"), "-v", "error", "-y", *cut, "-c:a", "flac", str(clip)]
        await asyncio.to_thread(subprocess.run, argv, check=True)
        clips.append(clip)
    playlist = root / "playlist.txt"
    playlist.write_text("".join(f"{p}\n" for p in clips))
    print(f"\nseams on real music: {len(clips)} clips ({REAL_LEAD:g} s silence + the last {REAL_TAIL:g} s of"
          f" {', '.join(REAL_ENDINGS)})")
    print(f"{'playback':<22} " + " ".join(f"{'junction ' + str(i + 1) + ' ms':>14}" for i in range(len(clips) - 1)))
    for number, (label, trim) in enumerate((("untrimmed (baseline)", False), ("trimmed", True))):
        resolver = LocalFileResolver(AnalysisConfig(), target_lufs=-14.0, max_gain_db=12.0, trim=trim)
        workdir = root / f"real{number}"
        workdir.mkdir()
        result = await capture_playback(workdir, playlist, resolver, plays=len(clips), limit_seconds=300)
        cues = [await resolver.resolve(QueueEntry("bench", str(p))) for p in clips]
        lengths = [(c.end or REAL_LEAD + REAL_TAIL) - c.start for c in cues]
        runs = silent_runs(result.capture)
        junctions = list(itertools.accumulate(lengths))[:-1]
        # The whole silent run that reaches within 50 ms of the junction (the cues are known to a sample;
        # decoders start a few ms early or late).
        found = [max((b - a for a, b in runs if b > j - 0.05 and a < j + 0.05), default=0.0) * 1000 for j in junctions]
        print(f"{label:<22} " + " ".join(f"{ms:>14.1f}" for ms in found))


async def measure_video_seams(root: Path) -> None:
    """The same through the video path: H.264 clips (1 s silence, 2 s tone, 1 s silence), decoded, vo=null."""
    clip = synth.SynthTrack((synth.silence(1.0), synth.tone(2.0), synth.silence(1.0)))
    names = ("a", "b", "c")
    for name in names:  # three files: one file three times would be one playlist entry repeating
        await synth.render(clip, root, name, ("mp4",))
    playlist = root / "playlist.txt"
    playlist.write_text("".join(f"{root / name}.mp4\n" for name in names))
    resolver = LocalFileResolver(AnalysisConfig(), target_lufs=-14.0, max_gain_db=12.0)
    result = await capture_playback(root, playlist, resolver, video=True)
    wav = result.capture
    # Every clip sounds the same, so look at the silences between the first and the last sound.
    inner = [(b - a) * 1000 for a, b in silent_runs(wav) if a > 0 and b < wav.duration][:2]
    shown = " ".join(f"{ms:>10.1f}" for ms in inner) or f"{0.0:>10.1f} {0.0:>10.1f}"
    print(f"{'trimmed, video mode':<26} {shown}   (mpv starts audio on a video frame: <= 1 frame by design)")


def sample(pid: int) -> tuple[float, float, float, float]:
    """CPU seconds, RSS, peak RSS and PSS (MB; shared libraries divided among their users) of one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    status = _kb_fields(Path(f"/proc/{pid}/status"))
    rollup = _kb_fields(Path(f"/proc/{pid}/smaps_rollup"))
    return cpu, status["VmRSS"] / 1024, status["VmHWM"] / 1024, rollup["Pss"] / 1024


def _kb_fields(path: Path) -> dict[str, int]:
    pairs = (line.split(":", 1) for line in path.read_text().splitlines() if ":" in line)
    return {key: int(value.split()[0]) for key, value in pairs if value.strip().endswith("kB")}


def footprint(
    argv: list[str], seconds: float, warmup: float = 3.0, *, env: dict[str, str] | None = None,
    ready: Callable[[], bool] | None = None,
) -> tuple[float, float, float, float]:
    """CPU % of one core, RSS, peak RSS and PSS (MB) of a process while it plays (after ``warmup`` seconds,
    and once ``ready`` says so, for at most 120 s)."""
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=env)
    try:
        time.sleep(warmup)
        deadline = time.monotonic() + 120
        while ready is not None and not ready():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"{argv[-1]}: not ready within 120 s (exit status {proc.poll()})")
            time.sleep(0.5)
        cpu0, *_ = sample(proc.pid)
        t0 = time.monotonic()
        time.sleep(seconds)
        cpu1, rss, peak, pss = sample(proc.pid)
        return (cpu1 - cpu0) / (time.monotonic() - t0) * 100, rss, peak, pss
    finally:
        stop(proc)


async def render_long(root: Path) -> list[Path]:
    tracks = [root / f"long-{hz}.m4a" for hz in (440, 660)]
    await asyncio.gather(*(render_tone(p, hz, lead=1.0, tone=60.0, trail=1.0) for p, hz in
                           zip(tracks, (440, 660), strict=True)))
    return tracks


def edge_config(root: Path, name: str, playlist: Path, extra: str = "") -> Path:
    config = root / f"{name}.toml"
    config.write_text(f'[edge]\nstate_dir = "{root / name / "state"}"\ncache_dir = "{root / name / "cache"}"\n'
                      f'[edge.player]\nvideo = false\nao = "null"\n[edge.queue]\nplaylist = "{playlist}"\n'
                      f'[edge.status]\nport = 0\n{extra}')
    return config


def without_dev_extras(root: Path) -> dict[str, str]:
    """The environment of a daemon that sees only the packaged dependencies (packaging/debian installs
    ``djamms-edge[systemd]``): the development extras sqlite-utils would import are hidden."""
    hidden = root / "no-dev-extras"
    for module in ("numpy", "pandas"):
        (hidden / module).mkdir(parents=True)
        (hidden / module / "__init__.py").write_text(f'raise ImportError("{module}: not installed on a box")\n')
    return {**os.environ, "PYTHONPATH": str(hidden)}


@contextlib.contextmanager
def serving(directory: Path) -> Iterator[str]:
    """A loopback HTTP server for ``directory``: its base URL."""
    handler = functools.partial(_SilentHandler, directory=str(directory))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()


class _SilentHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return None


def fully_analysed(state: Path, count: int) -> Callable[[], bool]:
    """Whether the night analysis has measured ``count`` cached tracks (their loudness is known)."""
    def check() -> bool:
        try:
            with contextlib.closing(sqlite3.connect(f"file:{state / 'media.db'}?mode=ro", uri=True)) as db:
                return db.execute("SELECT count(*) FROM track_analysis WHERE method = 'full'").fetchone()[0] >= count
        except sqlite3.Error:
            return False
    return check


def measure_footprint(root: Path, seconds: float) -> None:
    tracks = asyncio.run(render_long(root))
    (root / "playlist").mkdir()
    for track in tracks:
        (root / "playlist" / track.name).symlink_to(track)
    daemon = [sys.executable, "-m", "djamms_edge.edge.cli", "run", "--config"]
    packaged = without_dev_extras(root)
    print(f"\nfootprint while playing audio (ao=null, no video), measured over {seconds:g} s after 3 s warm-up")
    print(f"{'process':<46} {'CPU % of a core':>16} {'RSS MiB':>8} {'peak RSS MiB':>13} {'PSS MiB':>8}")
    results = {}

    def run(label: str, argv: list[str], **how: Any) -> None:
        results[label] = footprint(argv, seconds, **how)
        cpu, rss, peak, pss = results[label]
        print(f"{label:<46} {cpu:>16.1f} {rss:>8.1f} {peak:>13.1f} {pss:>8.1f}", flush=True)

    run("mpv CLI (baseline)", ["mpv", "--no-config", "--no-video", "--ao=null", "--really-quiet",
                               "--gapless-audio=yes", *map(str, tracks)])
    local = root / "playlist"
    run("djamms-edge run (this venv, dev extras too)", [*daemon, str(edge_config(root, "venv", local))])
    packaged_config = str(edge_config(root, "packaged", local))
    run("djamms-edge run (packaged dependencies)", [*daemon, packaged_config], env=packaged)
    # What a box runs most days: its state files exist and are current (no schema migration to apply).
    run("  the same, restarted (its files current)", [*daemon, packaged_config], env=packaged)
    with serving(root) as url:
        mixed = root / "mixed.txt"
        mixed.write_text("".join(f"{track}\n{url}/{track.name}\n" for track in tracks))
        night = ('[edge.fetch]\nmode = "audio"\nallowed_hosts = ["127.0.0.1"]\n[edge.night_analysis]\n'
                 'window_start = "00:00"\nwindow_end = "23:59"\nonly_when_idle = false\npause_s = 0.0\n')
        run("  + 2 downloads and their night analysis", [*daemon, str(edge_config(root, "night", mixed, night))],
            env=packaged, ready=fully_analysed(root / "night" / "state", len(tracks)))
    run_with_hub(root, tracks, daemon, packaged, run)
    base, ours = results["mpv CLI (baseline)"], results["djamms-edge run (packaged dependencies)"]
    ratios = [o / max(b, 0.01) for o, b in zip(ours, base, strict=True)]
    print(f"{'ratio packaged/baseline':<46} {ratios[0]:>16.2f} {ratios[1]:>8.2f} {ratios[2]:>13.2f} "
          f"{ratios[3]:>8.2f}")


def run_with_hub(root: Path, tracks: list[Path], daemon: list[str], env: dict[str, str],
                 run: Callable[..., None]) -> None:
    """A box as venues run it: with a real ``djamms-hub`` on loopback whose venue playlist holds the tracks (the
    system tests' world: tests/edge/sync/test_daemons.py), at its first start and restarted."""
    from djamms_edge.hub.auth import issue_device_token
    from tests.edge.sync.test_daemons import SECRET, VENUE, World

    (root / "hub").mkdir()
    world = World(root / "hub", tracks)
    try:
        world.start_hub()
        token = issue_device_token(SECRET, VENUE, "bench-box", time.time(), 86400)
        state = root / "hub" / "box"
        config = root / "hub" / "box.toml"
        config.write_text(f'[edge]\nvenue_id = "{VENUE}"\ndevice_id = "bench-box"\nstate_dir = "{state}"\n'
                          f'cache_dir = "{state / "cache"}"\n[edge.hub]\nurl = "{world.url}"\n'
                          f'device_token = "{token}"\n[edge.player]\nvideo = false\nao = "null"\n'
                          '[edge.status]\nport = 0\n')
        playing = functools.partial(_plays, state / "playback.db")
        run("djamms-edge run with a hub (packaged)", [*daemon, str(config)], env=env, ready=playing)
        run("  the same, restarted", [*daemon, str(config)], env=env, ready=playing)
    finally:
        world.close()


def _plays(db: Path) -> bool:
    """Whether the box has started a play (at its first start: the lease granted, the hub's entry resolved)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            return bool(conn.execute("SELECT count(*) FROM now_playing").fetchone()[0])
    except sqlite3.Error:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="footprint measuring time")
    parser.add_argument("--music", type=Path, default=REPO / "var" / "bench-music",
                        help="where bench/analysis.py keeps the Debian music packages it unpacks")
    parser.add_argument("--real-only", action="store_true", help="only the real-music seams")
    parser.add_argument("--footprint-only", action="store_true", help="only the daemon's footprint")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-transitions-") as tmp:
        root = Path(tmp)
        if args.footprint_only:
            (root / "footprint").mkdir()
            measure_footprint(root / "footprint", args.seconds)
            return
        (root / "real").mkdir()
        asyncio.run(measure_real_seams(root / "real", args.music))
        if args.real_only:
            return
        (root / "seams").mkdir()
        asyncio.run(measure_seams(root / "seams"))
        (root / "footprint").mkdir()
        measure_footprint(root / "footprint", args.seconds)


if __name__ == "__main__":
    main()
