"""``djamms-hub payments reconcile --since T``: after restoring a backup taken at T, give the hub back every
request patrons paid for since (hub/payments/reconcile.py). Safe to repeat, and to run while the hub serves."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
from datetime import UTC, datetime, timedelta

from djamms_edge.config import Config
from djamms_edge.hub.mailer import LogMailer
from djamms_edge.hub.payments.provider import PaymentError
from djamms_edge.hub.payments.reconcile import Reconciled, reconcile
from djamms_edge.hub.service import HubService
from djamms_edge.hub.store import UnsupportedStoreUrl, sqlite_path, store_from_url
from djamms_edge.hub.store.base import StoreError, StoreUnavailable
from djamms_edge.shared.cli import add_config_option, load_or_exit
from djamms_edge.shared.logs import setup_logging

AGO = re.compile(r"(\d{1,5})([mhd])")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def since_time(text: str, now: datetime | None = None) -> datetime:
    """``--since``: an ISO-8601 time with its zone (``2026-11-30T04:30:12Z``, or a backup's name's
    ``20261130T043012.345678Z``), or a time ago (``90m``, ``26h``, ``2d``)."""
    now = now or datetime.now(UTC)
    ago = AGO.fullmatch(text.strip())
    if ago is not None:
        return now - timedelta(**{UNITS[ago[2]]: int(ago[1])})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a time such as 2026-11-30T04:30:12Z nor a time ago such as 26h") from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone: add Z for UTC (2026-11-30T04:30:12Z)")
    if when > now:
        raise argparse.ArgumentTypeError(f"{text!r} is in the future")
    return when


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    payments = sub.add_parser("payments", help="payments: reconcile with the payment provider").add_subparsers(
        dest="action", required=True)
    rec = payments.add_parser(
        "reconcile", help="after restoring a backup: give back every request paid for since (docs/hub-deploy.md)")
    add_config_option(rec)
    rec.add_argument("--since", type=since_time, required=True, metavar="TIME",
                     help="when the backup was taken (UTC, e.g. 2026-11-30T04:30:12Z) or a time ago (26h); "
                          "checkouts begun up to payments.checkout_ttl_s before it are asked about too")


def run(args: argparse.Namespace) -> int:
    config = load_or_exit(args.config)
    payments = config.hub.payments
    if payments.provider != "stripe":
        print(f"djamms-hub payments reconcile: this hub takes no payments (hub.payments.provider = "
              f"{payments.provider}): nothing to reconcile", file=sys.stderr)
        return 2
    problems = [p for p in config.hub.startup_problems() if "stripe" in p]
    if problems:
        print("djamms-hub payments reconcile: " + "; ".join(problems), file=sys.stderr)
        return 2
    database = sqlite_path(config.hub.store.url)
    if database is not None and not database.is_file():  # opening it would make an empty store to "rebuild" into
        print(f"djamms-hub payments reconcile: no hub database at {database} (hub.store.url): restore the backup "
              "there first", file=sys.stderr)
        return 2
    setup_logging(config.hub.log_level, program="djamms-hub")
    logging.getLogger("stripe").setLevel(logging.WARNING)  # else a line per page asked and per retry
    # A checkout begun before the backup may have been paid after it: look back as long as one stays open.
    since_s = max(0, int(args.since.timestamp()) - payments.checkout_ttl_s)  # in seconds: year 1 works too
    try:
        result = asyncio.run(_reconcile(config, since_s))
    except UnsupportedStoreUrl as exc:
        print(f"djamms-hub payments reconcile: {exc}", file=sys.stderr)
        return 2
    except PaymentError as exc:
        print(f"djamms-hub payments reconcile: {exc}; nothing was changed: run it again once Stripe answers",
              file=sys.stderr)
        return 1
    except (StoreError, StoreUnavailable) as exc:
        print(f"djamms-hub payments reconcile: the hub's store: {exc}; what was done stays done: run it again",
              file=sys.stderr)
        return 1
    print(result.summary())
    for payment in result.by_hand:
        checkout = f" (checkout {payment.checkout_ref})" if payment.checkout_ref else ""
        print(f"refund by hand: {payment.payment_ref}{checkout}, {payment.amount}: {payment.why}")
    return 0


async def _reconcile(config: Config, since_s: int) -> Reconciled:
    store = store_from_url(config.hub.store.url, retain_changes=config.hub.feed.retain_changes)
    await store.open()
    service = HubService(config.hub, store, LogMailer())
    try:
        return await reconcile(service.payments, since_s)
    finally:
        await service.payments.close()
        await store.close()
