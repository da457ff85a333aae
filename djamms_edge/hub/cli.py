"""``djamms-hub``: run and administer the hub."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from djamms_edge.config import Config
from djamms_edge.hub import admin_cli, backup_cli, commands, payments_cli, qr_cli
from djamms_edge.shared.cli import add_config_commands, check_config, dump_config


def _hub_problems(config: Config) -> list[str]:
    return config.hub.startup_problems()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="djamms-hub", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add_config_commands(sub)
    commands.add_commands(sub)
    venue = sub.add_parser("venue", help="venues: create, list, QR code").add_subparsers(dest="action",
                                                                                     required=True)
    qr_cli.add_commands(venue)
    admin_cli.add_commands(sub, venue)
    backup_cli.add_commands(sub)
    payments_cli.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check-config":
        return check_config(args.config, _hub_problems)
    if args.command == "dump-config":
        return dump_config(args.config, "hub", args.json)
    if args.command in ("serve", "device-token", "seed-demo"):
        return commands.run(args)
    if args.command == "venue" and args.action == "qr":
        return qr_cli.run(args)
    if args.command == "backup":
        return backup_cli.run(args)
    if args.command == "payments":
        return payments_cli.run(args)
    if args.command in admin_cli.COMMANDS:
        return admin_cli.run(args)
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    raise SystemExit(main())
