"""``djamms-edge``: the venue box daemon and its tools.

Each command's module is imported only when that command runs (all of them for ``--help``, none for
``check-config`` and ``dump-config``): ``djamms-edge analyze`` must not pay for the daemon's imports
(aiohttp, libmpv, yt-dlp, SQLite helpers) nor for the hub's config schema, which together cost more
than the analysis of a file itself. ``python -X importtime`` shows it; bench/cli_start.py measures it,
tests/edge/test_cli_imports.py keeps it so.
"""

from __future__ import annotations

import argparse
import gc
import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from djamms_edge.shared.cli import CONFIG_COMMANDS, add_config_commands, check_config, dump_config

if TYPE_CHECKING:
    from djamms_edge.config import Config

# command: (module, its function that adds the subparser, its function that runs the command)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("djamms_edge.edge.daemon", "add_run_command", "run_command"),
    "update-ytdlp": ("djamms_edge.edge.ytdlp_update", "add_command", "run_command"),
    "analyze": ("djamms_edge.edge.media.cli", "add_analyze_command", "run_analyze"),
    "cache": ("djamms_edge.edge.media.cache_cli", "add_command", "run_command"),
    "doctor": ("djamms_edge.edge.doctor", "add_command", "run_command"),
}


def _edge_problems(config: Config) -> list[str]:
    from djamms_edge.edge.queue.local import playlist_problems  # only check-config needs the queue code

    return playlist_problems(config.edge.queue)


def _wanted(argv: Sequence[str]) -> list[str]:
    """The commands whose modules the parser needs: the one ``argv`` names (none for a config command),
    else all of them (``--help`` lists them, a mistyped command gets the choices)."""
    first = next((word for word in argv if not word.startswith("-")), None)
    if first in CONFIG_COMMANDS:
        return []
    return [first] if first in _COMMANDS else list(_COMMANDS)


def _module(command: str) -> Any:
    return importlib.import_module(_COMMANDS[command][0])


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given the arguments, with only the command they name (when they name one)."""
    parser = argparse.ArgumentParser(prog="djamms-edge", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_config_commands(sub)
    for command in _COMMANDS if argv is None else _wanted(argv):
        getattr(_module(command), _COMMANDS[command][1])(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    words = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(words).parse_args(words)
    # The command's imports made ~22,000 objects (60,000 for `run`) that live as long as the process. At exit
    # Python's last collections traverse them all: ~0.02 s of a one-file `analyze` (bench/cli_start.py).
    # Frozen (the permanent generation, which no collection traverses), they cost nothing more; what the
    # command makes from here on is collected as usual.
    gc.freeze()
    if args.command == "check-config":
        return check_config(args.config, _edge_problems)
    if args.command == "dump-config":
        return dump_config(args.config, "edge", args.json)
    if args.command in _COMMANDS:
        result: int = getattr(_module(args.command), _COMMANDS[args.command][2])(args)
        return result
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    raise SystemExit(main())
