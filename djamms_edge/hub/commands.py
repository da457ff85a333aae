"""Handlers of ``djamms-hub serve``, ``device-token`` and ``seed-demo``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable

from djamms_edge.config import Config
from djamms_edge.hub.accounts import current_device_token
from djamms_edge.hub.app import create_app
from djamms_edge.hub.auth import issue_user_token
from djamms_edge.hub.errors import ApiError
from djamms_edge.hub.seed import seed_demo
from djamms_edge.hub.serving import serve
from djamms_edge.hub.store import UnsupportedStoreUrl, redacted_url, store_from_url
from djamms_edge.hub.store.base import HubStore, StoreUnavailable
from djamms_edge.hub.web_input import ID_PATTERN
from djamms_edge.shared.cli import add_config_option, load_or_exit
from djamms_edge.shared.logs import setup_logging

log = logging.getLogger("djamms_edge.hub")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the hub")
    add_config_option(serve)
    serve.add_argument("--host", help="listen address (default: hub.host)")
    serve.add_argument("--port", type=int, help="listen port (default: hub.port)")
    token = sub.add_parser("device-token", help="print a new device JWT for one venue's box (earlier ones stop working;"
                                                " `djamms-edge` boxes pair from the console instead)")
    add_config_option(token)
    token.add_argument("--venue", required=True, help="venue id the device plays for")
    token.add_argument("--device", required=True, help="device id (the edge's edge.device_id)")
    seed = sub.add_parser("seed-demo", help="create a demo venue, users and playlist; print tokens as JSON")
    add_config_option(seed)
    seed.add_argument("--venue", default="demo-venue", help="venue id to create")
    seed.add_argument("--device", default="demo-box", help="device id to print a device token for")


def _ready_config(args: argparse.Namespace) -> Config | None:
    config = load_or_exit(args.config)
    problems = config.hub.startup_problems()
    if problems:
        print("djamms-hub: " + "; ".join(problems), file=sys.stderr)
        return None
    return config


def _store(config: Config) -> HubStore | None:
    try:
        return store_from_url(config.hub.store.url, retain_changes=config.hub.feed.retain_changes)
    except UnsupportedStoreUrl as exc:
        print(f"djamms-hub: {exc}", file=sys.stderr)
        return None


def _check_ids(*values: str) -> bool:
    bad = [v for v in values if not ID_PATTERN.fullmatch(v)]
    for value in bad:
        print(f"djamms-hub: {value!r} is not a valid id (letters, digits and _ . : @ -)", file=sys.stderr)
    return not bad


def run(args: argparse.Namespace) -> int:
    config = _ready_config(args)
    if config is None:
        return 2
    hub = config.hub
    store = _store(config)
    if store is None:
        return 2
    if args.command == "device-token":
        if not _check_ids(args.venue, args.device):
            return 2
        try:
            print(asyncio.run(_device_token(config, store, args.venue, args.device)))
        except ApiError as exc:
            print(f"djamms-hub: {exc.message}", file=sys.stderr)
            return 2
        return 0
    if args.command == "seed-demo":
        if not _check_ids(args.venue, args.device):
            return 2
        print(json.dumps(asyncio.run(_seed(config, store, args.venue, args.device)), indent=2))
        return 0
    setup_logging(hub.log_level, program="djamms-hub")
    # `is not None`: --port 0 (any free port) and --host "" (every interface) are real choices.
    host = args.host if args.host is not None else hub.host
    port = args.port if args.port is not None else hub.port
    log.info("hub starting on %s:%d (store %s)", host, port, redacted_url(hub.store.url))
    if not hub.smtp.host:
        log.warning("no SMTP server configured (hub.smtp.host): magic links will be written to this log")
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(serve(create_app(hub, store), hub.connections, host, port, _announce))
    except StoreUnavailable as exc:
        log.error("%s", exc)
        return 1
    except OSError as exc:  # the address is taken or not ours: say so, not a traceback
        log.error("cannot listen on %s:%d: %s", host, port, exc.strerror or exc)
        return 1
    return 0


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (it is a dependency on Linux, x86_64 and aarch64 wheels):
    libuv's loop and transports take about a fifth off each heartbeat's CPU (bench/hub_load.py). None:
    asyncio's own loop, which serves the same, a little slower."""
    try:
        import uvloop  # only `serve` needs it
    except ImportError as exc:  # on call, "why is this hub slower than the others" starts here
        log.warning("serving on asyncio's own event loop (slower): uvloop cannot be imported (%s)", exc)
        return None
    log.info("serving on uvloop %s", uvloop.__version__)
    return uvloop.new_event_loop


def _announce(urls: str) -> None:
    """One log line naming the bound port (--port 0 picks one); tests and scripts wait for it."""
    log.info("hub listening: %s", urls)


async def _device_token(config: Config, store: HubStore, venue_id: str, device_id: str) -> str:
    await store.open()
    try:
        return await current_device_token(store, config.hub, venue_id, device_id, time.time(), reissue=True)
    finally:
        await store.close()


async def _seed(config: Config, store: HubStore, venue_id: str, device_id: str) -> dict[str, str]:
    hub = config.hub
    now, day = time.time(), 86400
    await store.open()
    try:
        demo = await seed_demo(store, venue_id, int(now * 1000))
        device_token = await current_device_token(store, hub, venue_id, device_id, now, reissue=False)
    finally:
        await store.close()
    return {
        "venueId": demo.venue_id,
        "playlistId": demo.playlist_id,
        "adminToken": issue_user_token(hub.jwt_secret, demo.admin, now, hub.auth.token_ttl_days * day),
        "staffToken": issue_user_token(hub.jwt_secret, demo.staff, now, hub.auth.token_ttl_days * day),
        "deviceToken": device_token,
    }
