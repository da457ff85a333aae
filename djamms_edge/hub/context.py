"""What every hub handler shares: app keys, the error middleware, who is asking and from where."""

from __future__ import annotations

import logging
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from aiohttp import web

from djamms_edge.hub.auth import Principal
from djamms_edge.hub.credentials import CredentialCheck
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
    """Client mistakes become 4xx JSON naming the field; anything unexpected is logged and a bare 500.

    Under ``/v1/`` (the reference's Appwrite endpoint) every error has Appwrite's shape instead
    (``appwrite_error``), so Appwrite's SDKs raise their exception rather than crash on a missing key."""
    headers: dict[str, str] = {}
    try:
        return await handler(request)
    except ApiError as exc:
        error = exc
    except StoreError as exc:
        error = api_error_for(exc)
    except StoreUnavailable:  # the database is down or restarting (the store logs it once): retry later
        error, headers = ApiError(503, "store unavailable, try again shortly"), {"Retry-After": "5"}
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # aiohttp's own text says what was wrong ("Maximum request body size ... exceeded"), unless it is
        # just the default "404: Not Found".
        text = (exc.text or "").strip()
        message = exc.reason if not text or text.startswith(f"{exc.status}:") else text
        error, headers = ApiError(exc.status, message, "body" if exc.status == 413 else None), _allow(exc)
    except ConnectionResetError:
        # The client went away mid-request (an edge restarting while its feed socket opens): nobody to answer.
        log.debug("client left during %s %s", request.method, request.path)
        raise
    except Exception:
        log.exception("unexpected error handling %s %s", request.method, request.path)
        error = ApiError(500, "internal error")
    response = appwrite_error(error) if request.path.startswith("/v1/") else error_response(error)
    response.headers.update(headers)
    return response


# Appwrite's error types for the statuses the compat endpoint answers (its SDKs show ``type``).
APPWRITE_TYPES = {400: "general_argument_invalid", 401: "user_unauthorized", 403: "user_unauthorized",
                  404: "general_route_not_found", 405: "general_not_implemented", 408: "general_argument_invalid",
                  413: "general_argument_invalid", 429: "general_rate_limit_exceeded", 500: "general_unknown",
                  503: "general_server_error"}
APPWRITE_VERSION = "1.7.4"  # the server version the reference's SDKs were written against


def appwrite_error(exc: ApiError) -> web.Response:
    """``{"message", "code", "type", "version"}``: an HTTP-level error as Appwrite's server answers it
    (``type`` from ``exc.extra["type"]``, else by status)."""
    message = exc.message if exc.field is None else f"{exc.field}: {exc.message}"
    kind = exc.extra.get("type") or APPWRITE_TYPES.get(exc.status, "general_unknown")
    body = {"message": message, "code": exc.status, "type": kind, "version": APPWRITE_VERSION}
    response = web.json_response(body, status=exc.status)
    if exc.status == 408:
        response.force_close()
    return response


def _allow(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}


CREDENTIALS = web.AppKey("credentials", CredentialCheck)
# The checked Principal, or the ApiError refusing the token.
PRINCIPAL: web.RequestKey[Principal | ApiError] = web.RequestKey("principal")


@web.middleware
async def credentials_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Verify the bearer token (if any) and check it is still current, once per request."""
    if "Authorization" in request.headers:
        try:
            principal = _bearer(request)
            await request.app[CREDENTIALS].check(principal)
        except ApiError as exc:
            request[PRINCIPAL] = exc  # raised where a handler asks who is calling; a public endpoint ignores it
        else:
            request[PRINCIPAL] = principal
    return await handler(request)


def _bearer(request: web.Request) -> Principal:
    scheme, _, token = request.headers["Authorization"].partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "expected 'Authorization: Bearer <token>'", "Authorization")
    return request.app[SERVICE].tokens.verify(token.strip())


def principal_of(request: web.Request) -> Principal | None:
    """Who is calling: None without a token; ApiError(401) for a bad, expired or revoked one."""
    checked = request.get(PRINCIPAL)
    if isinstance(checked, ApiError):
        raise checked
    return checked


def client_address(request: web.Request) -> str:
    if request.app[SERVICE].config.limits.trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        first = forwarded.split(",")[0].strip()
        if first:
            return first[:64]
    return request.remote or "unknown"
