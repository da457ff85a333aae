"""``djamms-edge``: the venue box daemon and its tools."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from djamms_edge.config import Config
from djamms_edge.edge import daemon, doctor, ytdlp_update
from djamms_edge.edge.media import cache_cli
from djamms_edge.edge.media import cli as media_cli
from djamms_edge.edge.queue.local import playlist_problems
from djamms_edge.shared.cli import add_config_commands, check_config, dump_config


def _edge_problems(config: Config) -> list[str]:
    return playlist_problems(config.edge.queue)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="djamms-edge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add_config_commands(sub)
    daemon.add_run_command(sub)
    ytdlp_update.add_command(sub)
    media_cli.add_analyze_command(sub)
    cache_cli.add_command(sub)
    doctor.add_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check-config":
        return check_config(args.config, _edge_problems)
    if args.command == "dump-config":
        return dump_config(args.config, "edge", args.json)
    if args.command == "run":
        return daemon.run_command(args)
    if args.command == "update-ytdlp":
        return ytdlp_update.run_command(args)
    if args.command == "analyze":
        return media_cli.run_analyze(args)
    if args.command == "cache":
        return cache_cli.run_command(args)
    if args.command == "doctor":
        return doctor.run_command(args)
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    raise SystemExit(main())
