"""Onboarding from the command line: ``djamms-hub venue create``, ``admin create``, ``user set|remove|sign-out|list``,
``device revoke``. Each opens the configured store, does one thing, prints the result as JSON and closes it.

A new venue's owner is set up with three commands, then signs in at ``<public_url>/console/sign-in``::

    djamms-hub venue create bar-42 --name "The Bar" --timezone Europe/Berlin
    djamms-hub admin create --email owner@example.com
    djamms-hub user set --email staff@example.com --role staff --venue bar-42
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from djamms_edge.config import Config
from djamms_edge.hub import accounts
from djamms_edge.hub.errors import ApiError
from djamms_edge.hub.identity import InvalidEmail, normalize_email
from djamms_edge.hub.store import UnsupportedStoreUrl, store_from_url
from djamms_edge.hub.store.base import HubStore, StoreError, StoreUnavailable
from djamms_edge.hub.web_input import ID_PATTERN
from djamms_edge.shared.cli import add_config_option, load_or_exit

COMMANDS = ("venue", "admin", "user", "device")


class CliError(Exception):
    """A mistake of the operator's, said in one line."""


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 venue: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Onboarding commands; ``venue``: the ``djamms-hub venue`` group (which has other actions too)."""
    create = _leaf(venue, "create", "create a venue")
    create.add_argument("venue_id", metavar="ID", help="venue id (letters, digits and _ . : @ -)")
    create.add_argument("--name", required=True, help="the venue's name, as staff and patrons see it")
    create.add_argument("--timezone", default="UTC", help="IANA time zone, e.g. Europe/Berlin (default UTC)")
    _leaf(venue, "list", "list every venue")

    _leaf(_group(sub, "admin", "create admins"), "create", "create (or promote) an admin").add_argument(
        "--email", required=True)

    user = _group(sub, "user", "staff, venue owners and admins")
    user_set = _leaf(user, "set", "create a user or change their role and venue (old tokens stop working)")
    user_set.add_argument("--email", required=True)
    user_set.add_argument("--role", required=True, choices=("admin", "owner", "staff"),
                          help="owner: the venue's staff who also add and remove its staff")
    user_set.add_argument("--venue", help="venue id (staff without one see no venue; an owner needs one)")
    _leaf(user, "remove", "remove a user (their tokens stop working)").add_argument("--email", required=True)
    _leaf(user, "sign-out", "end every session of a user").add_argument("--email", required=True)
    _leaf(user, "list", "list users").add_argument("--venue", help="only this venue's")

    device = _group(sub, "device", "boxes of a venue")
    revoke = _leaf(device, "revoke", "revoke a box's token (it stops working at once)")
    revoke.add_argument("--venue", required=True)
    revoke.add_argument("--device", required=True)
    _leaf(device, "list", "a venue's boxes").add_argument("--venue", required=True)


def _group(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
           ) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    return sub.add_parser(name, help=help_text).add_subparsers(dest="action", required=True)


def _leaf(group: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
          ) -> argparse.ArgumentParser:
    parser = group.add_parser(name, help=help_text)
    add_config_option(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    config = load_or_exit(args.config)
    try:
        store = store_from_url(config.hub.store.url, retain_changes=config.hub.feed.retain_changes)
        result = asyncio.run(_with_store(store, lambda s: _ACTIONS[(args.command, args.action)](s, config, args)))
    except (CliError, UnsupportedStoreUrl) as exc:
        print(f"djamms-hub: {exc}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"djamms-hub: {exc.field + ': ' if exc.field else ''}{exc.message}", file=sys.stderr)
        return 2
    except (StoreError, StoreUnavailable) as exc:
        print(f"djamms-hub: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


async def _with_store(store: HubStore, action: Callable[[HubStore], Awaitable[Any]]) -> Any:
    await store.open()
    try:
        return await action(store)
    finally:
        await store.close()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _ident(value: str, what: str) -> str:
    if not ID_PATTERN.fullmatch(value):
        raise CliError(f"{value!r} is not a valid {what} (letters, digits and _ . : @ -)")
    return value


def _email(value: str) -> str:
    """The address in the hub's one normal form, as the API stores it."""
    try:
        return normalize_email(value)
    except InvalidEmail as exc:
        raise CliError(f"{value!r}: {exc}") from None


async def _user_by_email(store: HubStore, email: str) -> Any:
    user = await store.get_user_by_email(_email(email))
    if user is None:
        raise CliError(f"no user with email {email!r}")
    return user


async def _venue_create(store: HubStore, config: Config, args: argparse.Namespace) -> Any:
    venue_id = _ident(args.venue_id, "venue id")
    if not await accounts.create_venue(store, venue_id, args.name, args.timezone, _now_ms()):
        raise CliError(f"venue {venue_id!r} exists already")
    venue = await accounts.require_venue(store, venue_id)
    return venue.to_json()


async def _venue_list(store: HubStore, config: Config, args: argparse.Namespace) -> Any:
    return [v.to_json() for v in await store.list_venues()]


async def _admin_create(store: HubStore, config: Config, args: argparse.Namespace) -> Any:
    user = await accounts.set_user(store, _email(args.email), "admin", None, _now_ms())
    return {**user.to_json(), "signIn": config.hub.public_url.rstrip("/") + accounts.SIGN_IN_PATH}


async def _user_set(store: HubStore, config: Config, args: argparse.Namespace) -> Any:
    venue_id = _ident(args.venue, "venue id") if args.venue else None
    user = await accounts.set_user(store, _email(args.email), accounts.check_role(args.role), venue_id, _now_ms())
    return {**user.to_json(), "signIn": config.hub.public_url.rstrip("/") + accounts.SIGN_IN_PATH}


async def _user_remove(store: HubStore, config: Config, args: argparse.Namespace) -> Any:
    user = await _user_by_email(store, args.email)
    return {"removed": await store.remove_user(user.user_id), "userId": user.user_id}


async def _user_sign_out(store: HubStore, config: Config, args: argparse.Namespace) -> Any:
    user = await _user_by_email(store, args.email)
    return {"userId": user.user_id, "tokenVersion": await store.bump_user_tokens(user.user_id)}


async def _user_list(store: HubStore, config: Config, args: argparse.Namespace) -> Any:
    venue_id = _ident(args.venue, "venue id") if args.venue else None
    return [u.to_json() for u in await store.list_users(venue_id)]


async def _device_revoke(store: HubStore, config: Config, args: argparse.Namespace) -> Any:
    venue_id, device_id = _ident(args.venue, "venue id"), _ident(args.device, "device id")
    await accounts.require_venue(store, venue_id)
    if not await store.revoke_device(venue_id, device_id, _now_ms()):
        raise CliError(f"no box {device_id!r} is known at venue {venue_id!r}")
    return {"venueId": venue_id, "deviceId": device_id, "revoked": True}


async def _device_list(store: HubStore, config: Config, args: argparse.Namespace) -> Any:
    venue_id = _ident(args.venue, "venue id")
    await accounts.require_venue(store, venue_id)
    return [d.to_json() for d in await store.list_devices(venue_id)]


_ACTIONS: dict[tuple[str, str], Callable[[HubStore, Config, argparse.Namespace], Awaitable[Any]]] = {
    ("venue", "create"): _venue_create,
    ("venue", "list"): _venue_list,
    ("admin", "create"): _admin_create,
    ("user", "set"): _user_set,
    ("user", "remove"): _user_remove,
    ("user", "sign-out"): _user_sign_out,
    ("user", "list"): _user_list,
    ("device", "revoke"): _device_revoke,
    ("device", "list"): _device_list,
}
