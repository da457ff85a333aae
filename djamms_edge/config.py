"""The whole config file: a ``[hub]`` and an ``[edge]`` section.

One file format serves both programs so a single box can run the demo with one
file. ``load_config`` reads and checks both sections (the hub, the edge daemon, every
``check-config``); ``djamms_edge.edge.config.load_edge_config`` reads the ``[edge]`` section
alone, for the one-file commands that must start fast (``djamms-edge analyze``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from djamms_edge.edge.config import EdgeConfig
from djamms_edge.hub.config import HubConfig
from djamms_edge.shared.config_schema import load, load_file

DEFAULT_CONFIG_PATH = Path("/etc/djamms/config.toml")


@dataclass(frozen=True)
class Config:
    hub: HubConfig = field(default_factory=HubConfig)
    edge: EdgeConfig = field(default_factory=EdgeConfig)


def load_config(path: Path | None) -> Config:
    """Load ``path``; with None, the built-in defaults (plus environment overrides)."""
    if path is None:
        return load(Config, {})
    return load_file(Config, path)
