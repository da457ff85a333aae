"""Templating (aiohttp-jinja2), static files with cache headers, and the security headers of every response."""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

STATIC_PREFIX = "/static/"
# No inline script or style anywhere: pages load their own files from this origin, and data reaches
# scripts through data-* attributes or the JSON block base.html renders (a data block is never executed).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
# A versioned URL (?v=<hash of the file>) never changes content, so phones keep it; a bare one revalidates.
CACHE_VERSIONED = "public, max-age=31536000, immutable"
CACHE_UNVERSIONED = "no-cache"
CACHE_PAGE = "no-cache"


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    gzipped: bytes
    content_type: str
    version: str  # a hash of the content: the ?v= of its URL and its ETag


class StaticFiles:
    """The static folder, read once at startup (the files ship with the package): each file with its hash and
    a gzipped copy, so phones on a slow link get a third of the bytes without any work per request."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, StaticFile] = {}
        for path in sorted(root.iterdir()):
            if path.is_file():
                body = path.read_bytes()
                kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                self.files[path.name] = StaticFile(body, gzip.compress(body, 9, mtime=0), kind,
                                                   hashlib.sha256(body).hexdigest()[:12])

    def url(self, name: str) -> str:
        found = self.files.get(name)
        if found is None:
            raise KeyError(f"no static file {name!r} in {self.root}")
        return f"{STATIC_PREFIX}{name}?v={found.version}"

    async def serve(self, request: web.Request) -> web.Response:
        found = self.files.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        versioned = request.query.get("v") == found.version
        headers = {"ETag": f'"{found.version}"', "Vary": "Accept-Encoding",
                   "Cache-Control": CACHE_VERSIONED if versioned else CACHE_UNVERSIONED}
        if request.headers.get("If-None-Match") == headers["ETag"]:
            return web.Response(status=304, headers=headers)
        body = found.body
        if "gzip" in request.headers.get("Accept-Encoding", "") and len(found.gzipped) < len(body):
            body, headers["Content-Encoding"] = found.gzipped, "gzip"
        return web.Response(body=body, content_type=found.content_type, headers=headers)


STATIC = web.AppKey("web_static", StaticFiles)


def _package_dir(name: str) -> Path:
    return Path(str(resources.files(__package__ or "djamms_edge.hub.web") / name))


def setup_web(app: web.Application) -> None:
    """Templates, ``/static/``, and security and cache headers on every response of ``app``."""
    static = StaticFiles(_package_dir("static"))
    app[STATIC] = static
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(_package_dir("templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt variable fails the test that renders it, not silently
        default_helpers=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static"] = static.url
    env.filters["duration"] = duration_text
    app.router.add_get(STATIC_PREFIX + "{name}", static.serve, name="static")
    app.on_response_prepare.append(_add_headers)


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def duration_text(seconds: float) -> str:
    """``3:05`` for 185 seconds (templates: ``{{ seconds|duration }}``)."""
    whole = max(0, round(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def static_url(request: web.Request, name: str) -> str:
    """``/static/NAME?v=HASH`` for use outside templates (templates call ``static(NAME)``)."""
    return request.app[STATIC].url(name)


def render(request: web.Request, template: str, context: dict[str, Any], *, status: int = 200) -> web.Response:
    """``template`` (under templates/) rendered with ``context`` as an HTML response.

    Pages are small and dynamic: they are compressed when the phone accepts it and revalidated on each visit."""
    response = aiohttp_jinja2.render_template(template, request, context, status=status)
    response.headers["Cache-Control"] = CACHE_PAGE
    # The stylesheet blocks the first paint: ask for it with the page's headers, before the HTML is parsed.
    response.headers["Link"] = f"<{request.app[STATIC].url('style.css')}>; rel=preload; as=style"
    response.enable_compression()
    return response


def error_page(request: web.Request, status: int, heading: str, message: str) -> web.Response:
    """A page-shaped error (for browsers; the JSON API keeps its JSON errors)."""
    return render(request, "error.html", {"heading": heading, "message": message}, status=status)
