"""Tone tracks for module-scoped fixtures, which are synchronous: their renders run side by side in one loop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any


def rendered(*renders: Coroutine[Any, Any, Path]) -> list[Path]:
    """Run ``render_tone(...)`` calls (ffmpeg each) at once; their paths, in order."""

    async def together() -> list[Path]:
        return list(await asyncio.gather(*renders))

    return asyncio.run(together())
