"""What a one-file ``djamms-edge analyze FILE`` call costs above the analysis itself, and what it is made of.

Issue 14's target: the call <= 0.3 s above the analysis. Measured side by side, round after round (so a change
in the machine's load hits every row alike), medians of wall and CPU time:

- the whole call: ``djamms-edge analyze FILE`` as a box runs it (``installed_copy``: our package installed as
  files, as packaging/debian/postinst's pip does, so without the editable install's finder that this dev venv
  loads at every start), and the same call from this dev venv;
- the analysis itself: ``analyze_blocking(FILE)`` (what the CLI runs for a local file) in this warm process;
- what the call pays before it analyses: the interpreter's start (``python -c pass``, ``-S`` without site),
  the analyze command's imports (``djamms-edge analyze --help``; of them, the decoding library PyAV on its
  own; numpy's and asyncio's imports beside it: the call no longer imports them, the rows show what that
  saves), loading the config, and what the first analysis of a process does once;
- our own code's share alone (OWN_CODE: what this project's code decides, past the libraries' imports);
- every other ``djamms-edge`` command's start (``CMD --help``: imports and parser, nothing run): systemd
  waits for ``run`` and a venue owner for ``doctor``, on a Pi's SD card.

Then ``python -X importtime`` of the analyze call, grouped: where the import time goes.

With ``--baseline DIR`` (another ``djamms_edge`` package) its ``analyze FILE``, ``analyze --help`` and own
code run in the same rounds, through this venv's interpreter (so compare it with the dev venv's call): before
and after, side by side. For example main before the analysis left numpy (f415240):

    b=$(mktemp -d); git archive f415240 djamms_edge config.example.toml | tar -x -C $b
    .venv/bin/python bench/cli_start.py [--rounds 9] [--file PATH] [--baseline $b]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from djamms_edge.edge.media.analyzer import analyze_blocking  # noqa: E402
from djamms_edge.edge.media.config import AnalysisConfig  # noqa: E402
from djamms_edge.edge.media.synth import SynthTrack, fade, render, silence, tone  # noqa: E402

PYTHON = sys.executable
EDGE = str(Path(sys.executable).with_name("djamms-edge"))
# Installed by scripts/test.sh; a generated track of the same length stands in where it is missing.
REAL_TRACK = Path("/usr/share/games/frozen-bubble/snd/frozen-mainzik-1p.ogg")
STAND_IN = SynthTrack((silence(0.5), tone(200.0), fade(5.0), silence(2.0)))
COMMANDS = ("run", "doctor", "cache", "update-ytdlp", "check-config", "dump-config")
# What the analyze command must not import (tests/edge/test_cli_imports.py holds it to this).
HEAVY = ("djamms_edge.hub", "aiohttp", "mpv", "yt_dlp", "sqlite_utils", "numpy")


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process(argv: list[str], cwd: Path | None = None) -> Callable[[], None]:
    def job() -> None:
        subprocess.run(argv, check=True, capture_output=True, env=_env(), cwd=cwd)

    return job


def _baseline(directory: Path, *words: str) -> Callable[[], None]:
    # ``-c`` puts the working directory first on sys.path: the baseline's package wins over the venv's.
    code = "import sys; from djamms_edge.edge.cli import main; sys.exit(main())"
    return _process([PYTHON, "-c", code, *words], cwd=directory)


def _env() -> dict[str, str]:
    # No DJAMMS_CONFIG from the caller's shell: every row loads the built-in defaults.
    return {k: v for k, v in os.environ.items() if k != "DJAMMS_CONFIG"}


def _in_process(path: Path, config: AnalysisConfig) -> Callable[[], None]:
    def job() -> None:
        analyze_blocking(path, config)  # what the CLI runs for a local file

    return job


def timed(rows: list[tuple[str, Callable[[], None]]], rounds: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU seconds (this process's and its children's) of each row, rows taking turns."""
    walls: dict[str, list[float]] = defaultdict(list)
    cpus: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds):
        for label, job in rows:
            wall, cpu = time.perf_counter(), time.process_time() + _cpu_of_children()
            job()
            walls[label].append(time.perf_counter() - wall)
            cpus[label].append(time.process_time() + _cpu_of_children() - cpu)
    return {label: (statistics.median(walls[label]), statistics.median(cpus[label])) for label, _ in rows}


def import_groups(path: Path) -> tuple[list[tuple[str, float]], list[str]]:
    """``-X importtime`` of one analyze call: self time summed per group (ms), and the heavy modules it loaded."""
    result = subprocess.run([PYTHON, "-X", "importtime", EDGE, "analyze", str(path)],
                            check=True, capture_output=True, text=True, env=_env())
    groups: dict[str, float] = defaultdict(float)
    names = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = line.removeprefix("import time:").split("|")
        name = name.strip()
        names.append(name)
        groups[_group(name)] += int(self_us) / 1000
    heavy = sorted({n for n in names for h in HEAVY if n == h or n.startswith(h + ".")})
    return sorted(groups.items(), key=lambda kv: -kv[1]), heavy


def _group(module: str) -> str:
    top = module.split(".")[0]
    if top == "djamms_edge":
        return module
    if top.startswith("__editable__"):
        return "the editable install's finder (not in the .deb)"
    return top


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def _stand_in(directory: Path) -> Path:
    made = await render(STAND_IN, directory, "stand_in", ("flac",))
    return made["flac"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--file", type=Path, help=f"the track analysed (default {REAL_TRACK}, else a generated one)")
    parser.add_argument("--baseline", type=Path, help="a directory holding an earlier djamms_edge package")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = args.file or (REAL_TRACK if REAL_TRACK.exists() else asyncio.run(_stand_in(Path(scratch))))
        report(path, args.rounds, args.baseline, Path(scratch))


# The call's own code (our imports, the parser, the config file, the error output) on a missing file,
# with PyAV imported beforehand: the part of the start-up this project's code decides.
OWN_CODE = """
import contextlib, io, sys, time, av
wall, cpu = time.perf_counter(), time.process_time()
from djamms_edge.edge.cli import main
with contextlib.redirect_stderr(io.StringIO()):
    code = main(["analyze", "--config", sys.argv[1], "/nonexistent/track.ogg"])
assert code == 1, code
print(time.perf_counter() - wall, time.process_time() - cpu)
"""


def own_code(directory: Path, rounds: int) -> tuple[float, float]:
    """Median wall and CPU seconds of OWN_CODE with the package in ``directory``, the example config loaded: its
    own if it has one (an older package may not know keys added since), else this checkout's."""
    config = directory / "config.example.toml"
    config = config if config.is_file() else REPO / "config.example.toml"
    runs = [subprocess.run([PYTHON, "-c", OWN_CODE, str(config)], cwd=directory,
                           check=True, capture_output=True, text=True, env=_env()).stdout.split()
            for _ in range(rounds)]
    return statistics.median(float(w) for w, _ in runs), statistics.median(float(c) for _, c in runs)


def installed_copy(directory: Path) -> Path:
    """``djamms-edge`` as the .deb installs it, with this venv's dependencies; returns its console script.

    packaging/debian/postinst makes a venv and pip-installs our wheel into it: the package as files (compiled),
    and a console script. Here: a venv of this interpreter whose site-packages holds a copy of our package,
    this venv's .pth files but the editable install's, and one more .pth that reaches this venv's packages."""
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(directory)], check=True)  # type: ignore[attr-defined]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = directory / "lib" / version / "site-packages"
    ours = Path(sysconfig.get_path("purelib"))
    (site / "a-dependencies.pth").write_text(f"{ours}\n")  # read first: the other .pth files import from there
    for pth in ours.glob("*.pth"):
        if not pth.name.startswith("__editable__"):
            shutil.copy(pth, site / pth.name)
    shutil.copytree(REPO / "djamms_edge", site / "djamms_edge", ignore=shutil.ignore_patterns("__pycache__"))
    compile_bytecode(site / "djamms_edge")
    script = directory / "bin" / "djamms-edge"
    script.write_text(  # what pip writes for the console script
        f"#!{directory / 'bin' / 'python'}\nimport sys\nfrom djamms_edge.edge.cli import main\n"
        "if __name__ == '__main__':\n    sys.exit(main())\n"
    )
    script.chmod(0o755)
    return script


def compile_bytecode(*packages: Path) -> None:
    """Compile the packages' .pyc files, as pip does when the .deb installs the app on a box. Shells here set
    PYTHONDONTWRITEBYTECODE=1, so without this every call would compile our sources again (~0.01-0.04 s)."""
    for package in packages:
        subprocess.run([PYTHON, "-m", "compileall", "-q", str(package)], check=True)


def report(path: Path, rounds: int, baseline: Path | None, scratch: Path) -> None:
    compile_bytecode(REPO / "djamms_edge", *([baseline / "djamms_edge"] if baseline else []))
    installed = installed_copy(scratch / "installed")
    config = AnalysisConfig()
    analyze_blocking(path, config)  # calibrates this process, warms the page cache
    # A fresh process analyses the file twice: the first analysis's extra time is what a CLI call pays for it.
    first = (
        "import time; from djamms_edge.edge.media.analyzer import analyze_blocking as a;"
        f"from djamms_edge.edge.media.config import AnalysisConfig as C; p = {str(path)!r};"
        "t = time.perf_counter(); a(p, C()); m = time.perf_counter();"
        "a(p, C()); print(m - t, time.perf_counter() - m)"
    )
    load_before = load_average()
    rows: list[tuple[str, Callable[[], None]]] = [
        ("djamms-edge analyze FILE, as installed", _process([str(installed), "analyze", str(path)])),
        ("djamms-edge analyze FILE, dev venv", _process([EDGE, "analyze", str(path)])),
        ("the analysis in a warm process", _in_process(path, config)),
        ("python -S -c pass", _process([PYTHON, "-S", "-c", "pass"])),
        ("python -c pass, as installed", _process([str(installed.with_name("python")), "-c", "pass"])),
        ("python -c pass, dev venv", _process([PYTHON, "-c", "pass"])),
        ("python -c 'import av'", _process([PYTHON, "-c", "import av"])),
        *([("python -c 'import numpy' (not imported)", _process([PYTHON, "-c", "import numpy"]))]
          if importlib.util.find_spec("numpy") else []),
        ("python -c 'import asyncio' (not imported)", _process([PYTHON, "-c", "import asyncio"])),
        ("djamms-edge analyze --help", _process([EDGE, "analyze", "--help"])),
        *((f"djamms-edge {command} --help", _process([EDGE, command, "--help"])) for command in COMMANDS),
    ]
    if baseline:
        rows += [
            ("baseline: djamms-edge analyze FILE", _baseline(baseline.resolve(), "analyze", str(path))),
            ("baseline: djamms-edge analyze --help", _baseline(baseline.resolve(), "analyze", "--help")),
        ]
    figures = timed(rows, rounds)
    own = {"this": own_code(REPO, rounds), **({"baseline": own_code(baseline.resolve(), rounds)} if baseline else {})}
    firsts = [subprocess.run([PYTHON, "-c", first], check=True, capture_output=True, text=True, env=_env()).stdout
              for _ in range(max(3, rounds // 3))]
    first_extra = statistics.median(float(a) - float(b) for a, b in (line.split() for line in firsts))
    load_after = load_average()

    call, alone = figures["djamms-edge analyze FILE, as installed"][0], figures["the analysis in a warm process"][0]
    dev_call = figures["djamms-edge analyze FILE, dev venv"][0]
    bare, no_site = figures["python -c pass, dev venv"][0], figures["python -S -c pass"][0]
    bare_installed = figures["python -c pass, as installed"][0]
    imports = figures["djamms-edge analyze --help"][0] - bare
    libraries = figures["python -c 'import av'"][0] - bare
    print(f"bench/cli_start.py: {path.name}, {rounds} rounds side by side; load average {load_before} before,"
          f" {load_after} after ({os.cpu_count()} cores); our bytecode compiled first, as on an installed box\n")
    print(f"{'':44} {'wall s':>8} {'CPU s':>8}")
    for label, (wall, cpu) in figures.items():
        print(f"{label:44} {wall:8.3f} {cpu:8.3f}")
    (call_cpu, dev_call_cpu, alone_cpu) = (figures["djamms-edge analyze FILE, as installed"][1],
                                           figures["djamms-edge analyze FILE, dev venv"][1],
                                           figures["the analysis in a warm process"][1])
    print(f"\none-file CLI call as a box runs it (our package installed as files: packaging/debian/postinst)"
          f" {call:.3f} s, the analysis itself {alone:.3f} s: {call - alone:.3f} s above it (target <= 0.3 s);"
          f" in CPU seconds, less hit by the machine's load: {call_cpu:.3f} against {alone_cpu:.3f},"
          f" {call_cpu - alone_cpu:.3f} above")
    print(f"the same call from this dev venv (editable install) {dev_call:.3f} s: {dev_call - alone:.3f} s above it"
          f" ({dev_call_cpu - alone_cpu:.3f} s in CPU seconds)")
    print("made of:")
    print(f"  interpreter start            {bare_installed:.3f} s as installed; {bare:.3f} s in this dev venv, where"
          f" site and the venv's .pth files (the editable install's finder) take {bare - no_site:.3f} s")
    print(f"  the analyze command's imports {imports:.3f} s (analyze --help minus python -c pass, dev venv), of which")
    print(f"    PyAV                        {libraries:.3f} s (python -c 'import av' minus python -c pass)")
    print(f"    everything else             {imports - libraries:.3f} s")
    print(f"  first analysis in a process   {first_extra:+.3f} s (one-time work; median of {len(firsts)} processes)")
    rest = call - alone - bare_installed - imports - first_extra
    print(f"  config, parser, output        {rest:+.3f} s (what is left; noise too)")
    for name, (wall, cpu) in own.items():
        print(f"our own code ({name}): {wall:.3f} s wall, {cpu:.3f} s CPU (imports past PyAV, parser,"
              " config.example.toml, error output; a missing file analysed)")
    if baseline:
        before, before_cpu = figures["baseline: djamms-edge analyze FILE"]
        print(f"the baseline's call (dev venv): {before:.3f} s wall, {before_cpu:.3f} s CPU; this one {dev_call:.3f} s"
              f" wall, {dev_call_cpu:.3f} s CPU (baseline minus this: {before - dev_call:+.3f} s wall,"
              f" {before_cpu - dev_call_cpu:+.3f} s CPU)")
    groups, heavy = import_groups(path)
    print("\npython -X importtime of the call (self times, inflated by the measuring), by group:")
    for name, ms in groups[:12]:
        print(f"  {ms:7.1f} ms  {name}")
    print(f"  {sum(ms for _, ms in groups[12:]):7.1f} ms  the other {len(groups) - 12} groups")
    print(f"heavy modules the analyze call imported: {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
