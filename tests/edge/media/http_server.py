"""A small HTTP/1.1 media server on a loopback port, honouring Range requests, that can misbehave on purpose.

Paths: ``/media/NAME`` serves the file; ``/flaky/NAME`` drops the connection half-way through every
response starting at byte 0, but serves a resumed request (``Range: bytes=N-``, N > 0) to the end; ``/drop/NAME`` always
drops half-way; ``/stall/NAME`` sends half and then hangs (a download to kill); ``/trickle/NAME`` sends 1 KiB every
half second (just enough that no socket timeout fires: a download that never ends); ``/hold/NAME`` waits until
``released`` is set, then serves the file (a download that starts when the test says); ``/error/NAME`` answers 500 (a
server in trouble: yt-dlp retries with backoff); ``/forbidden/NAME`` answers 403 Forbidden, as YouTube's media
servers do to a client whose player challenge went unsolved; ``/redirect/NAME`` answers 302 to ``/media/NAME``
on 127.0.0.1 (a redirect into the box's own network); ``/changed/NAME`` serves only a client that sends the
``KNOWS_THE_CHANGE`` header and answers 403 to the rest (YouTube changed what it expects: only a newer yt-dlp
gets through); anything else is 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path

_TYPES = {".mp4": "video/mp4", ".m4a": "audio/mp4", ".webm": "video/webm", ".flac": "audio/flac",
          ".html": "text/html; charset=utf-8"}
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")
KNOWS_THE_CHANGE = "X-Knows-The-Change"


@dataclass
class MediaServer:
    root: Path
    url: str = ""
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    half_sent: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)  # set it on the server's loop
    _server: asyncio.Server | None = None
    _stalled: list[asyncio.StreamWriter] = field(default_factory=list)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        for writer in self._stalled:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._respond(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if writer not in self._stalled:
                writer.close()

    async def _respond(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        method, target, _ = head.split("\r\n", 1)[0].split(" ", 2)
        headers = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
        byte_range = next((v for k, v in headers.items() if k.lower() == "range"), None)
        self.requests.append((target, byte_range))
        mode, _, name = target.lstrip("/").partition("/")
        path = self.root / name
        if mode == "redirect":
            location = f"{self.url}/media/{name}"
            writer.write(f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n"
                         "Connection: close\r\n\r\n".encode())
            await writer.drain()
            return
        if mode == "error":
            writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\nConnection: close\r\n\r\noops!")
            await writer.drain()
            return
        knows = any(k.lower() == KNOWS_THE_CHANGE.lower() for k in headers)
        if mode == "forbidden" or (mode == "changed" and not knows):
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nConnection: close\r\n\r\nforbidden")
            await writer.drain()
            return
        if mode == "hold":
            await self.released.wait()
        if mode not in ("media", "flaky", "drop", "stall", "trickle", "changed", "hold") or "/" in name \
                or not path.is_file():
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found")
            await writer.drain()
            return
        data = path.read_bytes()
        start, end = 0, len(data) - 1
        status = "200 OK"
        match = _RANGE.fullmatch(byte_range or "")
        if match:
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else end
            if start >= len(data):
                writer.write(b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                await writer.drain()
                return
            end = min(end, len(data) - 1)
            status = "206 Partial Content"
        body = data[start : end + 1]
        lines = [
            f"HTTP/1.1 {status}",
            f"Content-Type: {_TYPES.get(path.suffix, 'application/octet-stream')}",
            f"Content-Length: {len(body)}",
            "Accept-Ranges: bytes",
            "Connection: close",
        ]
        if match:
            lines.append(f"Content-Range: bytes {start}-{end}/{len(data)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        if method == "HEAD":
            await writer.drain()
            return
        if mode == "trickle":
            for offset in range(0, len(body), 1024):
                writer.write(body[offset : offset + 1024])
                await writer.drain()
                await asyncio.sleep(0.5)
            return
        misbehave = mode in ("drop", "stall") or (mode == "flaky" and start == 0)
        if not misbehave or len(body) < 1024:
            writer.write(body)
            await writer.drain()
            return
        writer.write(body[: len(body) // 2])
        await writer.drain()
        self.half_sent.set()
        if mode == "stall":
            self._stalled.append(writer)
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()  # until the server closes
        else:
            writer.transport.abort()  # the connection dies mid-body
