"""``djamms-edge cache retry [VIDEO_ID…|--all]``: forget failure marks so the box fetches those tracks again.

Failure marks are the media cache's ``unavailable``/``broken``/``failed`` entries (``media.db``) and the local
queue's unplayable marks (``playback.db``). Safe while the daemon runs: only rows change (SQLite's locking
keeps both writers whole) and the cache is opened without its start-up reconcile, so nothing the daemon is
downloading is touched; its prefetcher picks the cleared tracks up on its next round. Without arguments it
lists the marked tracks and changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import TYPE_CHECKING

from djamms_edge.edge.config import EdgeConfig
from djamms_edge.edge.state import PlaybackState
from djamms_edge.shared.cli import add_config_option, load_or_exit
from djamms_edge.shared.ids import InvalidSource, parse_source

if TYPE_CHECKING:  # the cache imports yt-dlp (slow): only when this command runs, not for every CLI start
    from djamms_edge.edge.media.cache import CacheEntry, MediaCache


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cache = sub.add_parser("cache", help="the media cache's failure marks")
    actions = cache.add_subparsers(dest="cache_command", required=True)
    retry = actions.add_parser(
        "retry", help="forget failure marks so these tracks are fetched again (no arguments: list them)"
    )
    add_config_option(retry)
    retry.add_argument("sources", nargs="*", metavar="VIDEO_ID", help="video ids or media URLs")
    retry.add_argument("--all", action="store_true", help="every marked track")


def run_command(args: argparse.Namespace) -> int:
    edge = load_or_exit(args.config).edge
    if args.all and args.sources:
        print("djamms-edge cache retry: give VIDEO_IDs or --all, not both", file=sys.stderr)
        return 2
    try:
        keys = [parse_source(source).key for source in args.sources]
    except InvalidSource as exc:
        print(f"djamms-edge cache retry: {exc}", file=sys.stderr)
        return 2
    if not keys and not args.all:
        return asyncio.run(_list(edge))
    return asyncio.run(_retry(edge, None if args.all else keys))


def _cache(edge: EdgeConfig) -> MediaCache:
    from djamms_edge.edge.media.cache import WORK_DIR_NAME, MediaCache
    from djamms_edge.edge.media.fetcher import YtDlpFetcher

    fetcher = YtDlpFetcher(edge.fetch, edge.cache_dir / WORK_DIR_NAME)
    return MediaCache(edge.state_dir / "media.db", edge.cache_dir, fetcher, edge.analysis, edge.cache)


async def _list(edge: EdgeConfig) -> int:
    cache = _cache(edge)
    await cache.open(reconcile=False)
    try:
        marked = await cache.failures()
    finally:
        await cache.close()
    if not marked:
        print("no failure marks: every track the box tried is cached or will be tried again")
        return 0
    now = time.time()
    for entry in marked:
        print(describe(entry, now))
    print(f"\n{len(marked)} marked; `djamms-edge cache retry VIDEO_ID…` or `--all` clears them")
    return 0


def describe(entry: CacheEntry, now: float) -> str:
    kind = f"{entry.status} ({entry.failure_class})" if entry.failure_class else entry.status
    ago = f"{(now - entry.updated_at) / 60:.0f} min ago" if entry.updated_at else "at an unknown time"
    return f"{entry.key}: {kind} {ago}: {entry.error or 'no detail'}"


async def _retry(edge: EdgeConfig, keys: list[str] | None) -> int:
    cache = _cache(edge)
    await cache.open(reconcile=False)
    try:
        cleared = await cache.clear_failures(keys)
    finally:
        await cache.close()
    state_db = PlaybackState.database(edge.state_dir)
    await state_db.open()
    try:
        unmarked = await PlaybackState(state_db).clear_unplayable(keys)
    finally:
        await state_db.close()
    for key in cleared:
        print(f"{key}: will be fetched again")
    if keys is not None:
        for key in sorted(set(keys) - set(cleared)):
            print(f"{key}: had no failure mark in the cache")
    print(f"cleared {len(cleared)} cache failure mark(s) and {unmarked} unplayable mark(s)")
    return 0
