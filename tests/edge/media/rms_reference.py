"""The reference reading of where a recording's sound starts and ends: a full decode, 10 ms RMS.

Independent of the analyser on purpose: it decodes the WHOLE audio stream (no seeking, no windows,
no high-pass) to mono float samples at the file's own rate, cuts them into 10 ms windows on a grid
from the first sample, and reads each window's RMS level. Sound starts at the first window at or over
the threshold and ends with the last one: what "the 10 ms RMS energy falls under -60 dBFS for good"
means. The tests and bench/analysis.py hold ``analyze()`` to this reading.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WINDOW_SECONDS = 0.01


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed (scripts/install-system-deps.sh)")
    return path


@dataclass(frozen=True, slots=True)
class Levels:
    """10 ms RMS levels (dBFS) of a whole recording, window ``i`` covering [i * seconds, (i + 1) * seconds)."""

    db: np.ndarray
    seconds: float

    @property
    def duration(self) -> float:
        return len(self.db) * self.seconds

    def cues(self, threshold_db: float = -60.0) -> tuple[float, float]:
        """(start of the first window at or over ``threshold_db``, end of the last one)."""
        loud = np.flatnonzero(self.db >= threshold_db)
        if len(loud) == 0:
            raise ValueError(f"no 10 ms window reaches {threshold_db} dBFS")
        return float(loud[0] * self.seconds), float((loud[-1] + 1) * self.seconds)

    def loudest_after(self, time: float) -> float:
        """The loudest 10 ms window lying wholly after ``time`` (-inf if none)."""
        first = max(0, int(np.ceil(time / self.seconds - 1e-9)))
        rest = self.db[first:]
        return float(rest.max()) if len(rest) else float("-inf")

    def loudest_before(self, time: float) -> float:
        """The loudest 10 ms window lying wholly before ``time`` (-inf if none)."""
        last = max(0, int(np.floor(time / self.seconds + 1e-9)))
        head = self.db[:last]
        return float(head.max()) if len(head) else float("-inf")


def sample_rate(path: Path) -> int:
    out = subprocess.run(
        [tool("ffprobe"), "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=sample_rate",
         "-of", "csv=p=0", f"file:{path}"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return int(out.split()[0])


def decode(path: Path) -> tuple[np.ndarray, int]:
    """All of ``path``'s first audio stream, downmixed to mono, as float samples at its own rate."""
    rate = sample_rate(path)
    raw = subprocess.run(
        [tool("ffmpeg"), "-v", "error", "-nostdin", "-i", f"file:{path}", "-map", "0:a:0",
         "-ac", "1", "-f", "f32le", "-acodec", "pcm_f32le", "-"],
        capture_output=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, dtype="<f4").astype(np.float64), rate


def levels(samples: np.ndarray, rate: int, *, without_dc: bool = False) -> Levels:
    """10 ms RMS levels; ``without_dc``: of each window's deviation from its mean (a DC offset, which
    nobody hears, left out: some recordings end in one)."""
    size = round(rate * WINDOW_SECONDS)
    windows = samples[: len(samples) - len(samples) % size].reshape(-1, size)
    if without_dc:
        windows = windows - windows.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        db = 10 * np.log10(np.mean(windows**2, axis=1))
    return Levels(db, size / rate)


def rms_levels(path: Path) -> Levels:
    """Decode all of ``path``'s first audio stream and read its 10 ms RMS levels."""
    return levels(*decode(path))
