"""The hub's aiohttp application: routes, and a lifecycle that owns the store and background tasks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from djamms_edge.hub import (
    api_accounts,
    api_compat,
    api_console,
    api_details,
    api_payments,
    api_refusals,
    api_rest,
    feed,
    openapi,
)
from djamms_edge.hub.config import HubConfig
from djamms_edge.hub.context import (
    CREDENTIALS,
    SERVICE,
    SOCKETS,
    TASKS,
    OpenSockets,
    credentials_middleware,
    errors_middleware,
)
from djamms_edge.hub.cors import cors_middleware
from djamms_edge.hub.credentials import CredentialCheck
from djamms_edge.hub.mailer import Mailer, mailer_for
from djamms_edge.hub.schedule import ScheduleSwitcher
from djamms_edge.hub.service import Clock, HubService
from djamms_edge.hub.store.base import HubStore
from djamms_edge.hub.web import console, console_pages, patron, poster, setup_web
from djamms_edge.shared.tasks import TaskOwner

log = logging.getLogger(__name__)
HOUSEKEEPING_INTERVAL_S = 3600.0


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Open the store, run housekeeping; on the way out stop tasks first, then close the store."""
    service = app[SERVICE]
    await service.store.open()
    tasks = app[TASKS]
    tasks.start(_housekeeping(service), "housekeeping")
    tasks.start(app[api_console.SCHEDULER].run(), "schedule")
    tasks.start(service.payments.run_refunds(), "refunds")
    tasks.start(service.leases.run(), "heartbeat write-behind")
    try:
        yield
    finally:
        await tasks.close()
        await service.leases.flush_quietly()  # a clean stop loses no beat
        await service.payments.close()
        await service.store.close()


async def _housekeeping(service: HubService) -> None:
    while True:
        try:
            removed = await service.store.housekeeping(service.now_ms())
        except Exception:
            # Only dead rows wait longer; the next round (an hour on) tries again. Not worth stopping the hub.
            log.exception("housekeeping failed; retrying in %.0f s", HOUSEKEEPING_INTERVAL_S)
        else:
            if removed:
                log.info("housekeeping removed %d expired rows", removed)
        await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)


async def _close_sockets(app: web.Application) -> None:
    for ws in list(app[SOCKETS].sockets):
        await ws.close(code=1001, message=b"hub shutting down")


def create_app(config: HubConfig, store: HubStore, *, mailer: Mailer | None = None,
               clock: Clock = time.time) -> web.Application:
    """The hub as an aiohttp application; it opens ``store`` on startup and closes it on cleanup."""
    # CORS outermost: errors answered to an allowed origin carry its headers too. Tokens are checked inside.
    app = web.Application(middlewares=[cors_middleware, errors_middleware, credentials_middleware],
                          client_max_size=config.max_body_bytes)
    app[SERVICE] = HubService(config, store, mailer or mailer_for(config.smtp), clock)
    app[TASKS] = TaskOwner("hub")
    app[CREDENTIALS] = CredentialCheck(store)
    app[SOCKETS] = OpenSockets()
    app[api_console.SCHEDULER] = ScheduleSwitcher(app[SERVICE])
    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(_close_sockets)
    app.add_routes(api_rest.routes)
    app.add_routes(api_refusals.routes)
    app.add_routes(feed.routes)
    app.add_routes(api_compat.routes)
    app.add_routes(openapi.routes)
    setup_web(app)
    app.add_routes(patron.routes)
    app.add_routes(poster.routes)
    app.add_routes(console.routes)
    app.add_routes(console_pages.routes)
    app.add_routes(api_console.routes)
    app.add_routes(api_details.routes)
    api_payments.setup(app)
    api_accounts.setup(app)
    return app
