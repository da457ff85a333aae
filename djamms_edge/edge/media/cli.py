"""``djamms-edge analyze FILE_OR_URL… [--json] [--full]``: print each track's cue points."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from djamms_edge.edge.config import load_edge_config
from djamms_edge.edge.media.analyzer import TrackAnalysis, analyze, analyze_blocking
from djamms_edge.edge.media.config import AnalysisConfig
from djamms_edge.edge.media.ffmpeg import MediaError, media_input
from djamms_edge.shared.cli import add_config_option, or_exit


def add_analyze_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("analyze", help="find where each track's audible part starts and ends")
    add_config_option(parser)
    parser.add_argument("inputs", nargs="+", metavar="FILE_OR_URL", help="media file or http(s) URL")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of text")
    parser.add_argument("--full", action="store_true", help="decode everything and measure loudness (slower)")


def run_analyze(args: argparse.Namespace) -> int:
    """Analyse every input; a broken one is reported on stderr and the rest still run (exit 1 if any failed)."""
    config = or_exit(load_edge_config, args.config).analysis  # [edge] only: the hub's schema costs a start
    results = [(name, _analyze_one(name, config, args.full)) for name in args.inputs]
    failed = False
    for name, outcome in results:
        if isinstance(outcome, MediaError):
            failed = True
            print(f"djamms-edge analyze: {outcome}", file=sys.stderr)
        elif not args.json:
            print(_as_text(name, outcome))
    if args.json:
        print(json.dumps([_as_json(name, outcome) for name, outcome in results], indent=2))
    return 1 if failed else 0


def _analyze_one(name: str, config: AnalysisConfig, full: bool) -> TrackAnalysis | MediaError:
    """A local file is analysed in this thread, with no event loop (so this command never imports asyncio: ~0.045 s
    of its start-up); a URL, whose reads can stall, and ``--full`` (an ffmpeg run) as the daemon does it."""
    try:
        if full or media_input(name).is_remote:
            import asyncio

            return asyncio.run(analyze(name, config, full=full))
        return analyze_blocking(name, config)
    except MediaError as exc:
        return exc


def _as_text(name: str, result: TrackAnalysis) -> str:
    loudness = "" if result.loudness_lufs is None else f"  loudness {result.loudness_lufs:.1f} LUFS"
    notes = f"  ({'; '.join(result.notes)})" if result.notes else ""
    return (
        f"{name}: start {result.real_start_offset:.3f}s  end {result.real_end_offset:.3f}s  "
        f"duration {result.duration:.3f}s{loudness}  [{result.method}]{notes}"
    )


def _as_json(name: str, outcome: TrackAnalysis | MediaError) -> dict[str, Any]:
    if isinstance(outcome, MediaError):
        return {"input": name, "error": str(outcome)}
    return {"input": name, **outcome.to_json()}
