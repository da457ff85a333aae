"""This box's device id: configured, else derived from /etc/machine-id.

The machine id is a secret of the machine (systemd: "should not be exposed in untrusted environments");
the hub, the status page and the logs get an app-specific id derived from it the way
``sd_id128_get_machine_app_specific()`` does: HMAC-SHA256 keyed with the machine id over an id of this
application, truncated to 128 bits and made a v4 UUID. It is stable for the machine, differs from what any
other application derives, and cannot be turned back into the machine id. No machine id (a container): the
hostname, with a warning, since two boxes that share a hostname would fight over one registry entry.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import socket
from pathlib import Path

log = logging.getLogger(__name__)

MACHINE_ID = Path("/etc/machine-id")
# This application's id for sd_id128_get_machine_app_specific (generated once: `systemd-id128 new`).
APP_ID = bytes.fromhex("5c1f0e9a6b3d4e27a8f2c4d6b1e09a73")
PREFIX = "box-"


def app_specific_id(machine_id: bytes, app_id: bytes = APP_ID) -> str:
    """Pure: systemd's app-specific id for a 16-byte machine id, as 32 hex digits."""
    digest = bytearray(hmac.new(machine_id, app_id, hashlib.sha256).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x40  # UUID version 4, as systemd's id128_make_v4_uuid
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    return digest.hex()


BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def instance_id(state_dir: Path, boot_id_file: Path = BOOT_ID) -> str:
    """Who this daemon is to the hub's second-process check: the same for every restart of the daemon on this
    boot with this state dir (systemd restarting a crashed daemon takes its lease back at once), different for a
    copy of the box's token running anywhere else. No boot id readable: a random one (this process only)."""
    try:
        boot = boot_id_file.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return secrets.token_hex(8)
    return hashlib.sha256(f"{boot}\0{state_dir.resolve()}".encode()).hexdigest()[:16]


def device_id(configured: str, machine_id_file: Path = MACHINE_ID) -> str:
    """``configured`` if set, else ``box-`` and the app-specific id of the machine, else the hostname."""
    if configured:
        return configured
    try:
        text = machine_id_file.read_text(encoding="ascii").strip()
        machine = bytes.fromhex(text)
        if len(machine) != 16:
            raise ValueError(f"{len(machine)} bytes, not 16")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        host = socket.gethostname()
        log.warning("no usable machine id in %s (%s): device id is the hostname %r; set edge.device_id if two "
                    "boxes may share it", machine_id_file, exc, host)
        return host
    return PREFIX + app_specific_id(machine)
