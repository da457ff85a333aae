"""What the TV would show, on a box with no screen: libmpv's software renderer (render API "sw").

No headless video output renders the OSD (vo=image and screenshots draw video and subtitles only), but
``vo=libmpv`` with a software render context draws exactly what vo=gpu shows: the video with the OSD on
top. python-mpv does not wrap the sw parameters, so they are passed with ctypes (ids from libmpv/render.h).
"""

from __future__ import annotations

import ctypes
import shutil
import struct
import subprocess
import threading
import zlib
from pathlib import Path
from typing import Any

import mpv

_API_TYPE, _SW_SIZE, _SW_FORMAT, _SW_STRIDE, _SW_POINTER = 1, 17, 18, 19, 20


def _params(*pairs: tuple[int, Any]) -> Any:
    array = (mpv.MpvRenderParam * (len(pairs) + 1))()
    for slot, (type_id, data) in zip(array, pairs, strict=False):
        slot.type_id, slot.data = type_id, ctypes.cast(data, ctypes.c_void_p)
    return array  # the last slot stays zero: MPV_RENDER_PARAM_INVALID ends the list


class SoftwareScreen:
    """A screen on an mpv handle created with vo=libmpv (and force-window=no: the VO may only open once this
    context exists). Like a display, a thread renders whenever mpv says a new frame is due; ``grab`` takes
    the last one."""

    def __init__(self, handle: Any, width: int = 960, height: int = 540) -> None:
        self.width, self.height = width, height
        self._api = ctypes.c_char_p(b"sw")
        self._context = mpv.MpvRenderCtxHandle()
        mpv._mpv_render_context_create(ctypes.byref(self._context), handle, _params((_API_TYPE, self._api)))
        self._size = (ctypes.c_int * 2)(width, height)
        self._format = ctypes.c_char_p(b"rgb0")
        self._stride = ctypes.c_size_t(width * 4)
        self._buffer = ctypes.create_string_buffer(width * height * 4)
        self._frame = b""
        self._lock = threading.Lock()
        self._due = threading.Event()
        self._stop = threading.Event()
        self._on_update = mpv.RenderUpdateFn(lambda _data: self._due.set())
        mpv._mpv_render_context_set_update_callback(self._context, self._on_update, None)
        self._thread = threading.Thread(target=self._run, name="software-screen", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        render = _params((_SW_SIZE, self._size), (_SW_FORMAT, self._format),
                         (_SW_STRIDE, ctypes.pointer(self._stride)), (_SW_POINTER, self._buffer))
        while not self._stop.is_set():
            self._due.wait(0.05)
            self._due.clear()
            mpv._mpv_render_context_update(self._context)
            mpv._mpv_render_context_render(self._context, render)  # a display redraws, new frame or not
            with self._lock:
                self._frame = self._buffer.raw

    def grab(self) -> bytes:
        """The last frame as packed RGB, top row first."""
        with self._lock:
            raw = self._frame or bytes(self.width * self.height * 4)
        return b"".join(raw[i:i + 3] for i in range(0, len(raw), 4))

    def save_png(self, rgb: bytes, path: Path) -> Path:
        row = self.width * 3
        lines = b"".join(b"\x00" + rgb[y * row:(y + 1) * row] for y in range(self.height))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(lines))
                         + chunk(b"IEND", b""))
        return path

    def free(self) -> None:
        """Before the mpv handle goes (mpv waits for its render context to be freed)."""
        self._stop.set()
        self._thread.join()
        mpv._mpv_render_context_free(self._context)


def decode_qr(image: Path) -> list[str]:
    """The QR codes zbarimg (Debian zbar-tools) reads in ``image``."""
    zbarimg = shutil.which("zbarimg")
    assert zbarimg, "zbarimg missing: scripts/install-system-deps.sh --with-postgres installs zbar-tools"
    done = subprocess.run([zbarimg, "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", str(image)],
                          capture_output=True, text=True, timeout=30, check=False)
    return done.stdout.splitlines()
