"""The edge daemon's config section (``[edge]`` in the TOML file), and reading it alone.

``load_edge_config`` reads the ``[edge]`` section without the hub's schema (``djamms_edge.config`` holds
both): ``djamms-edge analyze`` should not pay for creating the hub's dataclasses at every call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from djamms_edge.edge.media.config import AnalysisConfig, CacheConfig, FetchConfig
from djamms_edge.edge.player.config import PlayerConfig
from djamms_edge.edge.queue.config import QueueConfig
from djamms_edge.edge.status.config import StatusConfig
from djamms_edge.edge.sync.config import NightAnalysisConfig, SyncConfig
from djamms_edge.shared.config_schema import load_section, read_file, secret, setting

SECTION = "edge"
# The config file's other top-level table (djamms_edge.config.Config): the hub's, checked by the hub and by
# every `check-config`.
OTHER_SECTIONS = ("hub",)


@dataclass(frozen=True)
class EdgeHubLink:
    url: str = setting("", doc="hub base URL, e.g. http://127.0.0.1:8700; empty = run without a hub")
    device_token: str = secret(doc="JWT from `djamms-hub device-token`", env="DJAMMS_DEVICE_TOKEN")


@dataclass(frozen=True)
class EdgeConfig:
    venue_id: str = setting("demo-venue", doc="the venue this box plays for")
    device_id: str = setting("", doc="this box's id; empty = derived from /etc/machine-id")
    state_dir: Path = setting(Path("/var/lib/djamms-edge"), doc="local SQLite state", env="STATE_DIRECTORY")
    cache_dir: Path = setting(Path("/var/cache/djamms-edge"), doc="downloaded media", env="CACHE_DIRECTORY")
    log_level: str = setting("INFO", doc="DEBUG, INFO, WARNING or ERROR")
    box_profile: Literal["auto", "pi4", "pi5", "x86-vaapi", "x86", "generic"] = setting(
        "auto", doc="what the hardware decodes (video codecs fetched, mpv hwdec); auto = detect it"
    )
    hub: EdgeHubLink = field(default_factory=EdgeHubLink)
    status: StatusConfig = field(default_factory=StatusConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    night_analysis: NightAnalysisConfig = field(default_factory=NightAnalysisConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    fetch: FetchConfig = field(default_factory=FetchConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    player: PlayerConfig = field(default_factory=PlayerConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)


def load_edge_config(path: Path | None) -> EdgeConfig:
    """The ``[edge]`` section of the file at ``path`` (None: the built-in defaults and the environment).

    Every problem ``djamms_edge.config.load_config`` reports about this section and the file's top level is
    reported, word for word; only the inside of ``[hub]`` is left to the hub."""
    return load_section(EdgeConfig, {} if path is None else read_file(path), SECTION, OTHER_SECTIONS)
