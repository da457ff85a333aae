"""Handlers of ``djamms-hub serve``, ``device-token`` and ``seed-demo``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time

from djamms_edge.config import Config
from djamms_edge.hub.app import create_app
from djamms_edge.hub.auth import issue_device_token, issue_user_token
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
    token = sub.add_parser("device-token", help="print a device JWT for one venue's box")
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
    if args.command == "device-token":
        if not _check_ids(args.venue, args.device):
            return 2
        print(issue_device_token(hub.jwt_secret, args.venue, args.device, time.time(),
                                 hub.auth.device_token_days * 86400))
        return 0
    store = _store(config)
    if store is None:
        return 2
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
        asyncio.run(serve(create_app(hub, store), hub.connections, host, port, _announce))
    except StoreUnavailable as exc:
        log.error("%s", exc)
        return 1
    except OSError as exc:  # the address is taken or not ours: say so, not a traceback
        log.error("cannot listen on %s:%d: %s", host, port, exc.strerror or exc)
        return 1
    return 0


def _announce(urls: str) -> None:
    """One log line naming the bound port (--port 0 picks one); tests and scripts wait for it."""
    log.info("hub listening: %s", urls)


async def _seed(config: Config, store: HubStore, venue_id: str, device_id: str) -> dict[str, str]:
    hub = config.hub
    await store.open()
    try:
        demo = await seed_demo(store, venue_id, int(time.time() * 1000))
    finally:
        await store.close()
    now, day = time.time(), 86400
    return {
        "venueId": demo.venue_id,
        "playlistId": demo.playlist_id,
        "adminToken": issue_user_token(hub.jwt_secret, demo.admin, now, hub.auth.token_ttl_days * day),
        "staffToken": issue_user_token(hub.jwt_secret, demo.staff, now, hub.auth.token_ttl_days * day),
        "deviceToken": issue_device_token(hub.jwt_secret, venue_id, device_id, now, hub.auth.device_token_days * day),
    }
