"""The doctor at daemon start: a real ``djamms-edge run`` beside a real hub, its status page and its systemd STATUS
(a real NOTIFY_SOCKET). A token for another box is said to be exactly that, never "hub unreachable"."""

from __future__ import annotations

from pathlib import Path

from tests.edge.sync.test_daemons import World, wait_until
from tests.edge.sync.test_daemons import tracks as tracks  # the fixture: generated tone tracks
from tests.shared.test_systemd_notify import Listener


def test_a_box_with_another_boxs_token_says_so_on_its_page_and_in_systemd_status(
    tmp_path: Path, tracks: list[Path]
) -> None:
    world = World(tmp_path, tracks)
    notify = tmp_path / "notify"
    listen = Listener(str(notify))
    try:
        world.start_hub()
        world.start_box("box-b", token_for="box-a", env={"NOTIFY_SOCKET": str(notify)})
        wanted = "the device token is for box 'box-a' but this box is 'box-b'"

        def page_says_so() -> dict[str, object] | None:
            status = world.status("box-b") if "status page at" in (tmp_path / "box-b.log").read_text() else None
            if status is None or not status["hub"]["refused"]:
                return None
            return status if any(wanted in problem for problem in status["problems"]) else None

        status = wait_until("the page shows the refusal and the doctor's problem", page_says_so, world=world)
        assert status["hub"]["detail"].startswith("the hub refuses this box: 403")
        assert status["role"] != "master"  # it never plays without the hub granting it the lease
        messages = listen.messages()
        assert any(m.startswith("READY=1") for m in messages), messages
        assert any("STATUS=" in m and wanted in m for m in messages), messages
        assert "hub unreachable" not in (tmp_path / "box-b.log").read_text()
    finally:
        world.close()
        listen.sock.close()
