"""Cross-origin calls from browsers: only from the origins named in ``hub.cors.allowed_origins`` (none by default).

Tokens travel in the ``Authorization`` header, never in cookies, so no credentials mode is offered. A
preflight from an allowed origin is answered here (204) before routing; anything from another origin gets
no CORS headers at all, so the browser keeps the answer from the page.
"""

from __future__ import annotations

from aiohttp import web

from djamms_edge.hub.context import SERVICE, Handler

ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE"
ALLOWED_HEADERS = ("Authorization, Content-Type, Idempotency-Key, X-Appwrite-Project, X-Appwrite-JWT, "
                   "X-Appwrite-Response-Format, X-SDK-Name, X-SDK-Platform, X-SDK-Language, X-SDK-Version")
PREFLIGHT_CACHE_S = "600"


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    allowed = origin is not None and origin in request.app[SERVICE].config.cors.allowed_origins
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        if not allowed:
            return web.Response(status=403, text="origin not allowed (hub.cors.allowed_origins)")
        return web.Response(status=204, headers={
            "Access-Control-Allow-Origin": origin or "", "Access-Control-Allow-Methods": ALLOWED_METHODS,
            "Access-Control-Allow-Headers": ALLOWED_HEADERS, "Access-Control-Max-Age": PREFLIGHT_CACHE_S,
            "Vary": "Origin"})
    response = await handler(request)
    if allowed and origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "Retry-After"
        response.headers.add("Vary", "Origin")
    return response
