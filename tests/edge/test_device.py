"""The device id derived from /etc/machine-id: systemd's app-specific id, stable, not the machine id itself."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from djamms_edge.config import Config
from djamms_edge.edge.config import EdgeConfig
from djamms_edge.edge.daemon import with_device_id
from djamms_edge.edge.device import app_specific_id, device_id, instance_id

MACHINE = "3d1219c7c4c5404aaa1f6d2a48adfda4"


def test_matches_systemds_app_specific_id() -> None:
    # `systemd-id128 machine-id --app-specific=5c1f0e9a6b3d4e27a8f2c4d6b1e09a73` on a machine with MACHINE
    assert app_specific_id(bytes.fromhex(MACHINE)) == "cdc74a96a5204652bc5c9e64969d2481"


def test_derived_from_the_machine_id_stable_and_not_revealing_it(tmp_path: Path) -> None:
    machine_id = tmp_path / "machine-id"
    machine_id.write_text(MACHINE + "\n")
    derived = device_id("", machine_id)
    assert derived == "box-cdc74a96a5204652bc5c9e64969d2481" == device_id("", machine_id)
    assert MACHINE[:8] not in derived
    other = tmp_path / "other"
    other.write_text("0" * 32 + "\n")
    assert device_id("", other) != derived  # another box, another id


def test_a_configured_id_wins(tmp_path: Path) -> None:
    assert device_id("bar-left", tmp_path / "no-such-file") == "bar-left"


@pytest.mark.parametrize("content", [None, "", "not hex at all", "abcd"], ids=["missing", "empty", "garbage", "short"])
def test_no_usable_machine_id_falls_back_to_the_hostname_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str | None
) -> None:
    machine_id = tmp_path / "machine-id"
    if content is not None:
        machine_id.write_text(content)
    assert device_id("", machine_id) == socket.gethostname()
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_the_daemon_fills_in_the_device_id_once_for_everything() -> None:
    config = Config(edge=EdgeConfig(device_id=""))
    resolved = with_device_id(config)
    assert resolved.edge.device_id == device_id("")
    assert with_device_id(resolved) is resolved


def test_the_instance_id_is_the_same_for_a_restart_and_differs_for_another_state_dir_or_boot(tmp_path: Path) -> None:
    boot = tmp_path / "boot_id"
    boot.write_text("6f1c2a8e-1111-4c1e-9d1a-0123456789ab\n")
    box, other = tmp_path / "state", tmp_path / "other"
    assert instance_id(box, boot) == instance_id(box, boot)
    assert instance_id(box, boot) != instance_id(other, boot)
    first = instance_id(box, boot)
    boot.write_text("0a0b0c0d-2222-4c1e-9d1a-0123456789ab\n")  # rebooted
    assert instance_id(box, boot) != first
    assert instance_id(box, tmp_path / "missing") != instance_id(box, tmp_path / "missing")  # random, per process
