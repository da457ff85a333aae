"""A new box pairs itself: nobody copies a token by hand.

With a hub configured and no ``edge.hub.device_token``, the daemon looks for the credentials it stored
when it was paired (``hub-credentials.json`` in the state directory, the config being read-only). Without
them it asks the hub for a pairing code, shows it on its status page and on the TV, and polls until staff
enter the code in the console; it then stores the device token and venue it received and starts as usual.
A stored token the hub refuses (revoked, or the box paired again elsewhere) is forgotten, so the next
start pairs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from djamms_edge import __version__
from djamms_edge.config import Config
from djamms_edge.edge.config import EdgeConfig
from djamms_edge.edge.player.api import Player
from djamms_edge.edge.status.model import (
    ChangeCounter,
    ControlRefused,
    HubLink,
    PairingCode,
    StatusSnapshot,
)
from djamms_edge.edge.status.server import StatusServer, start_status_server
from djamms_edge.edge.sync.errors import HubRefused, HubUnavailable
from djamms_edge.edge.sync.hub_client import PairingClient

log = logging.getLogger(__name__)

CREDENTIALS_FILE = "hub-credentials.json"
CONSOLE_PATH = "/console/"
RETRY_S = 5.0  # the hub did not answer: ask again
BUSY_RETRY_S = 60.0  # the hub refused (too many codes from this address): wait longer


@dataclass(frozen=True)
class Credentials:
    """What pairing gave this box; kept in the state directory."""

    hub_url: str
    venue_id: str
    device_id: str
    device_token: str


def credentials_path(state_dir: Path) -> Path:
    return state_dir / CREDENTIALS_FILE


def load_credentials(edge: EdgeConfig) -> Credentials | None:
    """The stored credentials when they are for this hub and this box; None otherwise (or unreadable)."""
    path = credentials_path(edge.state_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        stored = Credentials(str(data["hub_url"]), str(data["venue_id"]), str(data["device_id"]),
                             str(data["device_token"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable %s (%s): pairing again", path, exc)
        return None
    if stored.hub_url != edge.hub.url.rstrip("/") or stored.device_id != edge.device_id:
        log.warning("%s is for %s as %s, not %s as %s: pairing again", path, stored.hub_url, stored.device_id,
                    edge.hub.url, edge.device_id)
        return None
    return stored


def save_credentials(state_dir: Path, credentials: Credentials) -> None:
    """Written whole or not at all, readable by this user only (it holds a token)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = credentials_path(state_dir)
    temp = path.with_suffix(".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(asdict(credentials), out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, path)


def forget_credentials(state_dir: Path) -> bool:
    """Drop stored credentials the hub no longer accepts; True when there were any."""
    try:
        credentials_path(state_dir).unlink()
    except FileNotFoundError:
        return False
    return True


def with_credentials(config: Config, credentials: Credentials) -> Config:
    edge = config.edge
    paired = replace(edge, venue_id=credentials.venue_id, hub=replace(edge.hub, device_token=credentials.device_token))
    return replace(config, edge=paired)


def needs_pairing(edge: EdgeConfig) -> bool:
    return bool(edge.hub.url) and not edge.hub.device_token


async def paired_config(config: Config, player_factory: Callable[[], Player]) -> Config:
    """``config`` with this box's hub credentials: as configured, as stored, or from pairing now."""
    edge = config.edge
    if not needs_pairing(edge):
        return config
    stored = load_credentials(edge)
    if stored is None:
        stored = await pair_showing_code(edge, player_factory())
        save_credentials(edge.state_dir, stored)
        log.info("paired with venue %s; credentials stored in %s", stored.venue_id, credentials_path(edge.state_dir))
    return with_credentials(config, stored)


async def pair_showing_code(edge: EdgeConfig, player: Player) -> Credentials:
    """Pair, showing each code on the status page and the TV (an OSD message on the idle player)."""
    source = PairingStatusSource(edge.device_id)
    async with _status_page(edge, source), _screen(player) as show:
        def display(code: PairingCode | None) -> None:
            source.show(code)
            show("" if code is None else f"Pair this box: enter {code.code} in the DJAMMS console")

        return await pair(edge, display)


async def pair(edge: EdgeConfig, display: Callable[[PairingCode | None], None],
               clock: Callable[[], float] = time.time) -> Credentials:
    """Ask for codes until one is entered by staff; ``display`` is told each code (None once paired)."""
    client = PairingClient(edge.hub.url, timeout_s=edge.sync.request_timeout_s)
    console = edge.hub.url.rstrip("/") + CONSOLE_PATH
    try:
        while True:
            try:
                ticket = await client.start(edge.device_id)
            except (HubUnavailable, HubRefused) as exc:
                wait = BUSY_RETRY_S if isinstance(exc, HubRefused) else RETRY_S
                log.warning("cannot get a pairing code from %s (%s); retrying in %.0f s", edge.hub.url, exc, wait)
                await asyncio.sleep(wait)
                continue
            expires_at = ticket.expires_at_ms / 1000
            display(PairingCode(ticket.code, expires_at, console))
            log.warning("this box is not paired: enter code %s in the console at %s (device %s)", ticket.code,
                        console, edge.device_id)
            while clock() < expires_at:
                await asyncio.sleep(ticket.poll_s)
                try:
                    paired = await client.collect(ticket.secret)
                except HubUnavailable:
                    continue
                except HubRefused:
                    break  # expired (or collected by someone else): a new code
                if paired is not None:
                    display(None)
                    return Credentials(edge.hub.url.rstrip("/"), paired.venue_id, paired.device_id,
                                       paired.device_token)
    finally:
        await client.close()


class PairingStatusSource:
    """The status page while the box waits to be paired: its code, and nothing playing yet."""

    def __init__(self, device_id: str, clock: Callable[[], float] = time.time) -> None:
        self._device_id = device_id
        self._clock = clock
        self._changes = ChangeCounter()
        self._code: PairingCode | None = None

    def show(self, code: PairingCode | None) -> None:
        self._code = code
        self._changes.bump()

    def snapshot(self) -> StatusSnapshot:
        return StatusSnapshot(
            version=self._changes.version, role="offline",
            hub=HubLink(connected=False, since=self._clock(), detail="waiting to be paired"),
            now_playing=None, priority_queue=(), main_queue=(), cache=None, analysis=None, recent_errors=(),
            errors_total=0, volume=0.0, venue_id="", device_id=self._device_id, software_version=__version__,
            pairing=self._code,
        )

    async def wait_changed(self, after: int) -> int:
        return await self._changes.wait(after)

    async def skip(self) -> None:
        raise ControlRefused("this box is not paired yet")

    async def pause(self) -> None:
        raise ControlRefused("this box is not paired yet")

    async def resume(self) -> None:
        raise ControlRefused("this box is not paired yet")

    async def set_volume(self, volume: float) -> None:
        raise ControlRefused("this box is not paired yet")


@contextlib.asynccontextmanager
async def _status_page(edge: EdgeConfig, source: PairingStatusSource) -> AsyncIterator[None]:
    server: StatusServer | None
    try:
        server = await start_status_server(edge.status, source)
    except OSError as exc:
        log.error("status page not started on %s:%d: %s", edge.status.host, edge.status.port, exc)
        server = None
    try:
        yield
    finally:
        if server is not None:
            await server.close()


@contextlib.asynccontextmanager
async def _screen(player: Player) -> AsyncIterator[Callable[[str], None]]:
    """The TV: the player opened idle, for its on-screen message only; closed before the daemon opens its own."""
    try:
        await player.open(lambda event: None)
    except Exception as exc:  # no screen and no sound device: the status page still shows the code
        log.warning("cannot show the pairing code on the screen: %s", exc)
        yield lambda text: None
        return
    try:
        yield player.show_message
    finally:
        await player.close()
