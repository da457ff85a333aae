"""The hub's config section (``[hub]`` in the TOML file)."""

from __future__ import annotations

from dataclasses import dataclass, field

from djamms_edge.shared.config_schema import at_least, between, secret, setting

MIN_JWT_SECRET_BYTES = 32


def _jwt_secret_check(value: str) -> str | None:
    # An empty secret is allowed at load time so the edge can share a config file;
    # the hub itself refuses to start without one (see HubConfig.startup_problems).
    if value and len(value.encode()) < MIN_JWT_SECRET_BYTES:
        return f"must be at least {MIN_JWT_SECRET_BYTES} bytes"
    return None


@dataclass(frozen=True)
class StoreConfig:
    url: str = setting(
        "sqlite:///var/lib/djamms/hub.db",
        doc="sqlite:///ABSOLUTE/PATH or sqlite:RELATIVE/PATH; postgresql://… for several hub instances",
        env="DJAMMS_STORE_URL",
    )


@dataclass(frozen=True)
class HubConfig:
    host: str = setting("127.0.0.1", doc="address the hub listens on")
    port: int = setting(8700, doc="TCP port the hub listens on", check=between(1, 65535))
    public_url: str = setting("http://127.0.0.1:8700", doc="URL patrons and edges use (magic links point here)")
    jwt_secret: str = secret(
        doc=f"HS256 signing key, at least {MIN_JWT_SECRET_BYTES} bytes; no default on purpose",
        env="DJAMMS_JWT_SECRET",
        check=_jwt_secret_check,
    )
    max_body_bytes: int = setting(65536, doc="larger request bodies are refused with 413", check=at_least(1024))
    log_level: str = setting("INFO", doc="DEBUG, INFO, WARNING or ERROR")
    store: StoreConfig = field(default_factory=StoreConfig)

    def startup_problems(self) -> list[str]:
        """Problems that only matter when the hub itself is started."""
        if not self.jwt_secret:
            return [
                f"hub.jwt_secret: required to run the hub (at least {MIN_JWT_SECRET_BYTES} bytes; "
                "or set DJAMMS_JWT_SECRET)"
            ]
        return []
