"""The only module that decodes audio inside our own process: PyAV, FFmpeg's libraries bound for Python.

Why not an ffmpeg process, as for everything else: starting one costs 0.075-0.09 s of CPU before it
reads a byte (Debian's build loads ~150 shared libraries), as much as decoding 1.5 minutes of Vorbis.
The cue analysis decodes only a few seconds at each end of a track, so a process per track cost more
than the decoding (bench/analysis.py measures both). Here the libraries load once per process.

FFmpeg's own log stays off (PyAV's default): what failed is in the MediaError we raise.

Safety, as in ``ffmpeg``: an input is ``file:/absolute/path`` or an http(s) URL (``MediaInput``), opened
with the same protocol whitelist, so a playlist or a crafted name can never reach another protocol.
Blocking work runs in a worker thread (``run``): it checks between packets whether its caller was
cancelled or its time is up, and low-priority work (idle nights, beside playback) runs in a thread
of its own at nice 19, which on Linux lowers that thread only (and its I/O priority with it).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import av
import av.container
import av.filter

from djamms_edge.edge.media.ffmpeg import MediaError, MediaInput, Seek

if TYPE_CHECKING:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

# A network read stalled this long fails (ffmpeg's HTTP layer retries a dropped connection first).
NETWORK_TIMEOUT_SECONDS = 20.0
# Windows closer than this are decoded as one stretch: decoding a few seconds costs about what a seek does.
MERGE_GAP_SECONDS = 5.0
# A cancelled caller waits this long for the worker to notice (it checks between packets).
STOP_GRACE_SECONDS = 2.0
_HTTP_OPTIONS = {"reconnect": "1", "reconnect_on_network_error": "1", "reconnect_delay_max": "4"}
T = TypeVar("T")


class Cancelled(Exception):
    """Raised in the worker thread when its caller was cancelled."""


class Stop:
    """What a worker checks between packets: its caller's cancellation and its deadline."""

    def __init__(self, what: str, limit_seconds: float) -> None:
        self._what = what
        self._limit = limit_seconds
        self._deadline = time.monotonic() + limit_seconds
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    def check(self) -> None:
        if self._cancelled.is_set():
            raise Cancelled
        if time.monotonic() > self._deadline:
            raise MediaError(f"{self._what}: decoding took longer than {self._limit:.0f}s and was stopped")


_low_priority_worker: ThreadPoolExecutor | None = None


def _lower_this_thread() -> None:
    if sys.platform == "linux":  # setpriority on a thread id renices that thread alone
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


async def run(job: Callable[[Stop], T], *, what: str, limit_seconds: float, low_priority: bool = False) -> T:
    """``job(stop)`` in a worker thread; cancelling the caller stops it at its next ``stop.check()``.

    A job stuck inside one blocking read (a stalled server) cannot check: the caller is answered at
    its limit all the same, and the thread ends when the read times out (NETWORK_TIMEOUT_SECONDS)."""
    # Imported here, not with the module: a caller's event loop has loaded them already, and a one-shot
    # program analysing in its own thread (analyzer.analyze_blocking) need not pay for them.
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    global _low_priority_worker
    executor = None
    if low_priority:
        if _low_priority_worker is None:  # one thread: night analysis runs one track at a time
            _low_priority_worker = ThreadPoolExecutor(1, "analysis-nice19", initializer=_lower_this_thread)
        executor = _low_priority_worker
    stop = Stop(what, limit_seconds)
    future = asyncio.get_running_loop().run_in_executor(executor, job, stop)
    try:
        return await asyncio.wait_for(asyncio.shield(future), limit_seconds + STOP_GRACE_SECONDS)
    except TimeoutError:  # stuck past its own deadline check: inside a read
        stop.cancel()
        future.add_done_callback(_retrieve)
        raise MediaError(f"{what}: decoding took longer than {limit_seconds:.0f}s and was stopped") from None
    except asyncio.CancelledError:
        stop.cancel()
        future.add_done_callback(_retrieve)
        await asyncio.wait([future], timeout=STOP_GRACE_SECONDS)
        raise


def _retrieve(done: asyncio.Future[Any]) -> None:
    """Nobody awaits a given-up job any more: take its outcome so asyncio does not log it as lost."""
    if not done.cancelled():
        done.exception()


@dataclass(frozen=True, slots=True)
class Pcm:
    """A decoded window: mono samples (float32, full scale ±1) from track time ``start``, ``rate`` a second."""

    start: float
    rate: float
    samples: array[float]

    @property
    def end(self) -> float:
        return self.start + len(self.samples) / self.rate

    def cut(self, start: float, end: float) -> Pcm:
        """The part from ``start`` to ``end`` (track time; clipped to what there is)."""
        first = min(len(self.samples), max(0, round((start - self.start) * self.rate)))
        last = len(self.samples) if end == math.inf else max(first, round((end - self.start) * self.rate))
        return Pcm(self.start + first / self.rate, self.rate, self.samples[first:last])


def read_windows(
    inp: MediaInput, seeks: Mapping[str, Seek], stop: Stop, *, max_rate: float
) -> tuple[dict[str, Pcm], float | None]:
    """Decode the named parts of the first audio stream, downmixed to mono, in one opening of the input;
    and the container's duration (None if it does not say). Blocking: call it through ``run``.

    Each part keeps every k-th sample, the smallest k that brings its rate to ``max_rate`` or under:
    for the energy of 10 ms that is a sample of the same mean square (what lies above the lower
    rate's Nyquist frequency folds under it rather than being filtered away, so hiss keeps its
    energy), at a fraction of the work."""
    options = {"protocol_whitelist": inp.protocols, **(_HTTP_OPTIONS if inp.is_remote else {})}
    try:
        container = av.open(inp.url, options=options, timeout=NETWORK_TIMEOUT_SECONDS)
    except av.FFmpegError as exc:
        raise MediaError(f"{inp.name}: {_describe(exc)}") from None
    with container:
        if not container.streams.audio:
            raise MediaError(f"{inp.name}: has no audio stream")
        stream = container.streams.audio[0]
        duration = None if container.duration is None else container.duration / av.time_base
        origin = (container.start_time or 0) / av.time_base  # track time 0, as players count it
        wanted: dict[str, tuple[float, float]] = {}
        for name, seek in seeks.items():
            start = seek.start or 0.0
            if seek.last is not None:
                start = max(0.0, duration - seek.last) if duration is not None else 0.0
            wanted[name] = (start, math.inf if seek.length is None else start + seek.length)
        windows: dict[str, Pcm] = {}
        for span_start, span_end, names in _spans(wanted):
            if windows or span_start > 0:
                try:
                    container.seek(round((origin + span_start) * av.time_base))  # the last keyframe at or before
                except av.FFmpegError as exc:
                    raise MediaError(f"{inp.name}: cannot seek to {span_start:.1f}s ({_describe(exc)})") from None
            span = _decode(container, stream, span_start, span_end, origin, stop, max_rate)
            windows |= {name: span.cut(*wanted[name]) for name in names}
        return windows, duration


def _spans(wanted: Mapping[str, tuple[float, float]]) -> list[tuple[float, float, list[str]]]:
    """The stretches to decode: windows that overlap, or lie closer than a seek is worth, share one."""
    spans: list[tuple[float, float, list[str]]] = []
    for name, (start, end) in sorted(wanted.items(), key=lambda item: item[1]):
        if spans and start <= spans[-1][1] + MERGE_GAP_SECONDS:
            first, last, names = spans[-1]
            spans[-1] = (first, max(last, end), [*names, name])
        else:
            spans.append((start, end, [name]))
    return spans


def _decode(
    container: av.container.InputContainer,
    stream: av.AudioStream,
    start: float,
    end: float,
    origin: float,
    stop: Stop,
    max_rate: float,
) -> Pcm:
    """Samples from ``start`` to ``end`` (track time) from where the container stands (at or before start)."""
    rate = float(stream.codec_context.sample_rate or stream.rate or 0)
    if rate <= 0:
        raise MediaError("the audio stream has no sample rate")
    collected: _Collector | None = None
    position = start  # track time of the next sample, for frames without a timestamp
    for packet in _packets(container, stream):
        stop.check()
        try:
            frames = packet.decode()
        except av.InvalidDataError:
            continue  # a damaged packet: skipped, as ffmpeg does (a gap, not an error)
        for frame in frames:
            if not isinstance(frame, av.AudioFrame):
                continue
            at = position if frame.time is None else frame.time - origin
            position = at + frame.samples / rate
            if position <= start:
                continue
            if at >= end:
                break
            collected = collected or _Collector(at, start, end, rate, max_rate)
            collected.add(frame)
        if position >= end:
            break
    if collected is None:
        return Pcm(start, rate, array("f"))
    return collected.pcm()


# Frames are converted to mono this many samples at a time: one call into libavfilter for many small
# frames (a Vorbis frame can be 128 samples), and never a whole long window at its full rate in memory.
BATCH_SAMPLES = 1 << 16


class _Collector:
    """A window's frames, from the one overlapping ``start``: as mono float32 at full scale ±1, trimmed to
    ``start``..``end`` and thinned to every ``step``-th sample, the phase kept across batches.

    libswresample converts (libavfilter's ``aformat``, as PyAV's AudioResampler sets it up): the very
    downmix ``ffmpeg -ac 1`` does, so the reference reading's levels are ours. Stereo becomes (L + R)/√2,
    not the mean (+3 dB for a centred sound); more channels go through its own matrix. Trimming and
    thinning are array slices: C loops, not Python ones."""

    def __init__(self, first: float, start: float, end: float, rate: float, max_rate: float) -> None:
        self.start = max(first, start)
        self._skip = max(0, round((start - first) * rate))
        self._left = math.inf if end == math.inf else max(0, round((end - self.start) * rate))
        self._step = max(1, math.ceil(rate / max_rate - 1e-9))
        self._rate = rate
        self._read = 0  # samples taken since ``start`` (before thinning): the phase
        self._samples = array("f")
        self._graph: av.filter.Graph | None = None
        self._source: tuple[str, str, int] = ("", "", 0)  # the frames' format, layout and rate
        self._pending = 0  # samples in the graph

    def add(self, frame: av.AudioFrame) -> None:
        source = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self._graph is None or source != self._source:  # the first frame, or the stream changed its format
            self._drain()
            self._graph, self._source = _to_mono(frame), source
        self._graph.push(frame)
        self._pending += frame.samples
        if self._pending >= BATCH_SAMPLES:  # a batch is ready (a format conversion holds nothing back)
            self._take(self._graph.pull())

    def pcm(self) -> Pcm:
        self._drain()
        return Pcm(self.start, self._rate / self._step, self._samples)

    def _drain(self) -> None:
        if self._graph is None:
            return
        self._graph.push(None)
        while True:
            try:
                self._take(self._graph.pull())
            except (av.BlockingIOError, av.EOFError):
                break
        self._graph = None

    def _take(self, frame: av.AudioFrame | av.VideoFrame) -> None:
        assert isinstance(frame, av.AudioFrame)  # what an audio graph's sink gives
        self._pending -= frame.samples
        mono = array("f")
        mono.frombytes(memoryview(frame.planes[0])[: frame.samples * mono.itemsize])
        skipped = min(self._skip, len(mono))
        self._skip -= skipped
        taken = mono[skipped : skipped + int(min(self._left, len(mono) - skipped))]
        self._left -= len(taken)
        self._samples += taken[(-self._read) % self._step :: self._step]
        self._read += len(taken)


def _to_mono(frame: av.AudioFrame) -> av.filter.Graph:
    """A graph turning frames like ``frame`` into mono float32 ones of BATCH_SAMPLES (the last one shorter)."""
    graph = av.filter.Graph()
    # One thread: libavfilter would otherwise start a pool of slice threads (one per core) for every graph,
    # and join them when it is freed, ~0.3-0.6 ms a graph, four graphs a track; a mono signal is one slice.
    graph.threads = 1
    source = graph.add_abuffer(
        sample_rate=frame.sample_rate, format=frame.format.name, layout=frame.layout.name, time_base=frame.time_base
    )
    convert = graph.add("aformat", f"sample_fmts=flt:channel_layouts=mono:sample_rates={frame.sample_rate}")
    sink = graph.add("abuffersink")
    source.link_to(convert)
    convert.link_to(sink)
    graph.configure()
    graph.set_audio_frame_size(BATCH_SAMPLES)
    return graph


def _packets(container: av.container.InputContainer, stream: av.AudioStream) -> Iterator[av.Packet]:
    """The stream's packets, ending (like ffmpeg) where the container can no longer be read: a cut
    file is a shorter stream, which the caller judges by its length."""
    packets = container.demux(stream)
    while True:
        try:
            yield next(packets)
        except StopIteration:
            return
        except av.FFmpegError:
            return


def _describe(exc: av.FFmpegError) -> str:
    if isinstance(exc, av.InvalidDataError):
        return "not a readable media file"
    return exc.strerror or str(exc)

