"""Templating (aiohttp-jinja2), static files with cache headers, and the security headers of every response."""

from __future__ import annotations

import hashlib
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


class StaticFiles:
    """The static folder and a content hash per file, computed once at startup (files ship with the package)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.versions = {
            path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            for path in sorted(root.iterdir()) if path.is_file()
        }

    def url(self, name: str) -> str:
        version = self.versions.get(name)
        if version is None:
            raise KeyError(f"no static file {name!r} in {self.root}")
        return f"{STATIC_PREFIX}{name}?v={version}"


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
    app.router.add_static(STATIC_PREFIX, static.root, name="static")
    app.on_response_prepare.append(_add_headers)


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith(STATIC_PREFIX) and response.status == 200:
        static = request.app[STATIC]
        name = request.path[len(STATIC_PREFIX):]
        versioned = request.query.get("v") == static.versions.get(name)
        response.headers["Cache-Control"] = CACHE_VERSIONED if versioned else CACHE_UNVERSIONED


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
    response.enable_compression()
    return response


def error_page(request: web.Request, status: int, heading: str, message: str) -> web.Response:
    """A page-shaped error (for browsers; the JSON API keeps its JSON errors)."""
    return render(request, "error.html", {"heading": heading, "message": message}, status=status)
