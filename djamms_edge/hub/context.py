"""What every hub handler shares: app keys, the error middleware, who is asking and from where."""

from __future__ import annotations

import logging
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from aiohttp import web

from djamms_edge.hub.auth import Principal
from djamms_edge.hub.errors import ApiError
from djamms_edge.hub.service import HubService, api_error_for
from djamms_edge.hub.store.base import StoreError, StoreUnavailable
from djamms_edge.shared.tasks import TaskOwner

log = logging.getLogger(__name__)

SERVICE = web.AppKey("service", HubService)
TASKS = web.AppKey("tasks", TaskOwner)


class OpenSockets:
    """Feed sockets still open, so shutdown can close them (aiohttp would otherwise wait on them),
    and how many each token holds (``hub.connections.feed_sockets_per_token``)."""

    def __init__(self) -> None:
        self.sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        self.per_holder: Counter[str] = Counter()

    @contextmanager
    def held_by(self, holder: str, cap: int) -> Iterator[None]:
        """Count one socket for ``holder`` while the block runs; ApiError(429) when it already holds ``cap``."""
        if self.per_holder[holder] >= cap:
            raise ApiError(429, f"this token already holds {cap} feed sockets; close one first", "Authorization")
        self.per_holder[holder] += 1
        try:
            yield
        finally:
            self.per_holder[holder] -= 1
            if self.per_holder[holder] <= 0:
                del self.per_holder[holder]


SOCKETS = web.AppKey("sockets", OpenSockets)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(exc: ApiError) -> web.Response:
    response = web.json_response(exc.body(), status=exc.status, headers=exc.headers)
    if exc.status == 408:
        response.force_close()  # the rest of a trickled body is not worth waiting for
    return response


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Client mistakes become 4xx JSON naming the field; anything unexpected is logged and a bare 500."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except StoreError as exc:
        return error_response(api_error_for(exc))
    except StoreUnavailable:  # the database is down or restarting (the store logs it once): retry later
        return web.json_response({"error": "store unavailable, try again shortly", "field": None}, status=503,
                                 headers={"Retry-After": "5"})
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        field = "body" if exc.status == 413 else None
        # aiohttp's own text says what was wrong ("Maximum request body size ... exceeded"), unless it is
        # just the default "404: Not Found".
        text = (exc.text or "").strip()
        message = exc.reason if not text or text.startswith(f"{exc.status}:") else text
        return web.json_response({"error": message, "field": field}, status=exc.status, headers=_allow(exc))
    except ConnectionResetError:
        # The client went away mid-request (an edge restarting while its feed socket opens): nobody to answer.
        log.debug("client left during %s %s", request.method, request.path)
        raise
    except Exception:
        log.exception("unexpected error handling %s %s", request.method, request.path)
        return web.json_response({"error": "internal error", "field": None}, status=500)


def _allow(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}


def principal_of(request: web.Request) -> Principal | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "expected 'Authorization: Bearer <token>'", "Authorization")
    return request.app[SERVICE].tokens.verify(token.strip())


def client_address(request: web.Request) -> str:
    if request.app[SERVICE].config.limits.trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        first = forwarded.split(",")[0].strip()
        if first:
            return first[:64]
    return request.remote or "unknown"
