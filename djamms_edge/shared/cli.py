"""Pieces both command-line programs share: the --config option and config commands.

The whole config's schema (``djamms_edge.config``) is imported only when a command loads it, so a command
reading one section (``djamms-edge analyze``) never creates the other sections' dataclasses.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from djamms_edge.shared.config_schema import ConfigError, render_toml, to_dict

if TYPE_CHECKING:
    from djamms_edge.config import Config

CONFIG_ENV = "DJAMMS_CONFIG"
CONFIG_COMMANDS = ("check-config", "dump-config")
Loaded = TypeVar("Loaded")


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None,
        help=f"TOML config file (default: ${CONFIG_ENV}, else built-in defaults)",
    )


def or_exit(load: Callable[[Path | None], Loaded], path: Path | None) -> Loaded:
    """``load(path)``, or every problem printed and exit with status 2."""
    try:
        return load(path)
    except ConfigError as exc:
        print(f"djamms: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def load_or_exit(path: Path | None) -> Config:
    """The whole config (both programs' sections), or every problem printed and exit with status 2."""
    from djamms_edge.config import load_config

    return or_exit(load_config, path)


def check_config(path: Path | None, extra_checks: Callable[[Config], list[str]]) -> int:
    from djamms_edge.config import load_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    problems = extra_checks(config)
    if problems:
        print("invalid config:\n" + "\n".join(f"  - {p}" for p in problems), file=sys.stderr)
        return 2
    print(f"config OK ({path or 'built-in defaults'})")
    return 0


def dump_config(path: Path | None, section: str, as_json: bool) -> int:
    config = load_or_exit(path)
    data = {section: to_dict(getattr(config, section))}
    print(json.dumps(data, indent=2) if as_json else render_toml(data))
    return 0


def add_config_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = sub.add_parser(CONFIG_COMMANDS[0], help="validate the config file and report every problem")
    add_config_option(check)
    dump = sub.add_parser(CONFIG_COMMANDS[1], help="print the effective config (secrets masked)")
    add_config_option(dump)
    dump.add_argument("--json", action="store_true", help="print JSON instead of TOML")
