"""``djamms-hub serve`` as a real process: its URL, its log, a SIGTERM at the end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.hub.conftest import SECRET


def hub_config_file(tmp_path: Path, extra: str = "", secret: str = SECRET, store_url: str | None = None) -> Path:
    """A config for a hub on SQLite in ``tmp_path`` (or on ``store_url``); ``extra`` is TOML appended (more
    sections)."""
    path = tmp_path / "config.toml"
    url = store_url or f"sqlite:///{tmp_path / 'hub.db'}"
    path.write_text(f'[hub]\njwt_secret = "{secret}"\n[hub.store]\nurl = "{url}"\n' + extra)
    return path


def hub_command(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``djamms-hub ARGS`` as a process of its own, without this process's DJAMMS_ settings (plus ``env``)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DJAMMS_")} | (env or {})
    return subprocess.run([sys.executable, "-m", "djamms_edge.hub.cli", *args], capture_output=True, text=True,
                          timeout=60, env=environment, check=False)


@dataclass
class ServedHub:
    url: str
    pid: int
    log: list[str] = field(default_factory=list)  # stderr lines so far
    killed: bool = False

    def kill(self) -> None:
        """SIGKILL the hub (a crash: nothing it held in memory is written); serving() then expects no clean exit."""
        os.killpg(self.pid, signal.SIGKILL)
        self.killed = True


@asynccontextmanager
async def serving(config: Path, host: str = "127.0.0.1", *, nofile: int | None = None) -> AsyncIterator[ServedHub]:
    """``djamms-hub serve --port 0`` in its own process group (its fd limit ``nofile`` if given); yields once it
    listens, then SIGTERMs it and expects a clean exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJAMMS_")}

    def limit_fds() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "djamms_edge.hub.cli", "serve", "--config", str(config), "--host", host,
        "--port", "0", stderr=asyncio.subprocess.PIPE, start_new_session=True, env=env, preexec_fn=limit_fds,
    )
    reader: asyncio.Task[None] | None = None
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        while not lines or "hub listening:" not in lines[-1]:
            raw = await asyncio.wait_for(proc.stderr.readline(), timeout=30)
            assert raw, "hub exited before listening:\n" + "".join(lines)
            lines.append(raw.decode())
        hub = ServedHub(lines[-1].split("hub listening: ", 1)[1].strip(), proc.pid, lines)

        async def read_log(stream: asyncio.StreamReader) -> None:
            async for raw in stream:
                hub.log.append(raw.decode())

        reader = asyncio.create_task(read_log(proc.stderr))
        yield hub
        if not hub.killed:
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), timeout=15) == 0, "".join(hub.log)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
