"""The status page's config section (``[edge.status]``)."""

from __future__ import annotations

from dataclasses import dataclass

from djamms_edge.shared.config_schema import between, secret, setting

MIN_ADMIN_TOKEN_CHARS = 16


def _admin_token_check(value: str) -> str | None:
    # Empty is allowed (the page is read-only then); a short token is refused
    # rather than silently accepted, because anyone on the LAN may try it.
    if value and len(value) < MIN_ADMIN_TOKEN_CHARS:
        return f"must be empty (controls off) or at least {MIN_ADMIN_TOKEN_CHARS} characters"
    return None


@dataclass(frozen=True)
class StatusConfig:
    host: str = setting("127.0.0.1", doc="address the status page listens on; 0.0.0.0 exposes it to the LAN")
    port: int = setting(8080, doc="TCP port of the status page (0 = any free port)", check=between(0, 65535))
    admin_token: str = secret(
        doc="bearer token for skip/pause/volume; empty = controls refused",
        env="DJAMMS_STATUS_ADMIN_TOKEN",
        check=_admin_token_check,
    )
    max_event_clients: int = setting(
        16, doc="open live-update (SSE) connections allowed at once; more get 503", check=between(1, 1000)
    )
    max_connections: int = setting(
        64, doc="open connections allowed at once (pages, live updates, API); more get 503", check=between(2, 10000)
    )
    idle_timeout_s: float = setting(
        30.0, doc="a connection whose client sent nothing this long is closed (live updates excepted)",
        check=between(1.0, 3600.0),
    )
    # Requests naming any other host are refused (DNS rebinding); see server._known_host.
    host_names: tuple[str, ...] = setting(
        (), doc="extra host names the page answers to (e.g. box.lan); IPs, localhost, *.local, the hostname always work"
    )
