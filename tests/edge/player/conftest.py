"""Generated media for the player tests, and a harness that drives the real player or the fake alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from djamms_edge.edge.player.api import Player, PlayerEvent
from djamms_edge.edge.player.config import PlayerConfig
from djamms_edge.edge.player.fake import FakePlayer
from djamms_edge.edge.player.mpv_player import MpvPlayer
from djamms_edge.edge.player.seams import render_tone


@dataclass(frozen=True)
class Media:
    """Short tones (0.2 s silence, 0.6 s tone, 0.2 s silence), one long tone, and two unplayable files."""

    short: tuple[Path, Path, Path]
    long: Path
    missing: Path
    corrupt: Path
    durations: dict[Path, float] = field(default_factory=dict)


async def _render_all(root: Path) -> Media:
    shorts = [root / f"short-{hz}.m4a" for hz in (300, 700, 1500)]
    await asyncio.gather(
        *(render_tone(path, hz, lead=0.2, tone=0.6, trail=0.2) for path, hz in zip(shorts, (300, 700, 1500),
                                                                                    strict=True)),
        render_tone(root / "long.m4a", 440, lead=0.5, tone=29.0, trail=0.5),
    )
    corrupt = root / "corrupt.m4a"
    corrupt.write_bytes(shorts[0].read_bytes()[:3000])  # a download cut short: no moov atom
    durations = {path: 1.0 for path in shorts} | {root / "long.m4a": 30.0}
    return Media((shorts[0], shorts[1], shorts[2]), root / "long.m4a", root / "missing.m4a", corrupt, durations)


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    return asyncio.run(_render_all(tmp_path_factory.mktemp("player-media")))


def headless_config(**changes: object) -> PlayerConfig:
    """No screen, no sound card: ``ao=null`` plays in real time, ``ao=pcm`` as fast as it can decode."""
    values: dict[str, object] = {"video": False, "ao": "null", "skip_fade_s": 0.1}
    values.update(changes)
    return PlayerConfig(**values)  # type: ignore[arg-type]


@dataclass
class Harness:
    player: Player
    events: asyncio.Queue[PlayerEvent]
    elapse: Callable[[float], Awaitable[None]]
    fake: FakePlayer | None = None

    async def next_event(self, limit: float = 10.0) -> PlayerEvent:
        if self.fake is None:
            return await asyncio.wait_for(self.events.get(), limit)
        waited = 0.0
        while self.events.empty() and waited < limit:
            await self.elapse(0.05)
            waited += 0.05
        return self.events.get_nowait()

    async def take(self, count: int) -> list[PlayerEvent]:
        return [await self.next_event() for _ in range(count)]


@pytest.fixture(params=["mpv", "fake"])
async def harness(request: pytest.FixtureRequest, media: Media) -> AsyncIterator[Harness]:
    events: asyncio.Queue[PlayerEvent] = asyncio.Queue()
    if request.param == "mpv":
        player: Player = MpvPlayer(headless_config())
        await player.open(events.put_nowait)
        yield Harness(player, events, asyncio.sleep)
    else:
        fake = FakePlayer(media.durations)
        player = fake
        await player.open(events.put_nowait)

        async def elapse(seconds: float) -> None:
            fake.advance(seconds)
            for _ in range(3):  # let call_soon deliver what advancing produced
                await asyncio.sleep(0)

        yield Harness(player, events, elapse, fake)
    await player.close()
