"""Play a local playlist through the real engine and libmpv into a WAV capture (tests and bench/).

mpv's ``ao=pcm`` writes what would have gone to the sound card, as fast as it can decode,
so a few tracks "play" in a fraction of a second; ``seams`` then measures the result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from djamms_edge.edge.player.config import PlayerConfig
from djamms_edge.edge.player.engine import PlaybackEngine
from djamms_edge.edge.player.mpv_player import MpvPlayer
from djamms_edge.edge.player.resolver import TrackResolver
from djamms_edge.edge.player.seams import Capture, read_wav
from djamms_edge.edge.queue.config import QueueConfig
from djamms_edge.edge.queue.local import LocalQueue, load_playlist
from djamms_edge.edge.state import PlaybackState, PlayRecord


@dataclass(frozen=True)
class CaptureResult:
    capture: Capture
    history: list[PlayRecord]
    unplayable: dict[str, str]


def capture_config(capture: Path, lookahead: int = 2, video: bool = False) -> PlayerConfig:
    # lookahead 2 hands three tracks over before the first ends: at ao=pcm speed a track lasts milliseconds.
    # ao-pcm-append: should mpv ever reopen its output, what was captured so far is kept.
    # video: decode and "show" the video (vo=null, software decoding) as a box with a screen would.
    return PlayerConfig(video=video, vo="null", hwdec="no", ao="pcm",
                        mpv_options=(f"ao-pcm-file={capture}", "ao-pcm-append=yes"), lookahead=lookahead)


async def capture_playback(
    workdir: Path, playlist: Path, resolver: TrackResolver, *, requests: Sequence[Path] = (), plays: int = 3,
    video: bool = False, limit_seconds: float = 60.0,
) -> CaptureResult:
    """Play until ``plays`` entries have finished; ``requests`` are queued as paid requests first."""
    capture = workdir / "capture.wav"
    config = capture_config(capture, video=video)
    db = PlaybackState.database(workdir)
    await db.open()
    try:
        state = PlaybackState(db)
        queue = LocalQueue(state, load_playlist(playlist), QueueConfig())
        for path in requests:
            await queue.request(str(path), title=f"paid {path.stem}")
        engine = PlaybackEngine(MpvPlayer(config), queue, resolver, state, config)
        changed = asyncio.Event()
        engine.subscribe(changed.set)
        await engine.start()
        task = asyncio.create_task(engine.run(), name="capture-playback")
        try:
            async with asyncio.timeout(limit_seconds):
                while len([p for p in await state.history() if p.end_reason == "finished"]) < plays:
                    await changed.wait()
                    changed.clear()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await engine.close()
        return CaptureResult(read_wav(capture), await state.history(), await state.unplayable_since(0))
    finally:
        await db.close()
