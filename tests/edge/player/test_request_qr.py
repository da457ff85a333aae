"""Which address the TV's QR code carries, and the drawing handed to libmpv (its pixels: test_mpv_player)."""

from __future__ import annotations

import pytest

from djamms_edge.edge.player.config import PlayerConfig
from djamms_edge.edge.player.request_qr import QrPlacement, RequestQr, ass_events, configured


@pytest.mark.parametrize(
    ("config", "hub_url", "expected"),
    [
        pytest.param(PlayerConfig(), "http://hub:8700", None, id="off-by-default"),
        pytest.param(PlayerConfig(show_request_qr=True), "http://hub:8700/", RequestQr("http://hub:8700/v/bar", 15.0),
                     id="the-hubs-patron-page"),
        pytest.param(PlayerConfig(show_request_qr=True, request_qr_url="https://bar.example/request",
                                  request_qr_song_start_s=5.0), "http://10.0.0.2:8700",
                     RequestQr("https://bar.example/request", 5.0), id="a-public-address-wins"),
        pytest.param(PlayerConfig(show_request_qr=True), "", None, id="no-hub-no-address"),
    ],
)
def test_configured(config: PlayerConfig, hub_url: str, expected: RequestQr | None) -> None:
    assert configured(config, hub_url, "bar") == expected


@pytest.mark.parametrize("placement", list(QrPlacement))
def test_the_code_is_drawn_on_a_white_quiet_zone_with_a_caption_only_full_screen(placement: QrPlacement) -> None:
    events = ass_events("http://hub.example/v/bar", placement).splitlines()
    side = 640 if placement is QrPlacement.SCREEN else 280
    assert events[0].endswith(rf"\p1}}m 0 0 l {side} 0 {side} {side} 0 {side}{{\p0}}")
    assert (len(events) == 3) == (placement is QrPlacement.SCREEN)


def test_an_address_cannot_inject_ass_tags_into_the_caption() -> None:
    caption = ass_events(r"http://hub.example/v/{\fs200}x", QrPlacement.SCREEN).splitlines()[2]
    assert caption.endswith(r"http://hub.example/v/\{\\fs200\}x")
