"""The reference reading itself (pure part): which 10 ms windows count, and where cues land."""

from __future__ import annotations

import numpy as np
import pytest

from tests.edge.media.rms_reference import Levels, levels

INF = float("-inf")


@pytest.mark.parametrize(
    ("db", "threshold", "cues"),
    [
        ([INF, -70, -30, -20, -65, INF], -60.0, (0.02, 0.04)),
        ([-30, -59.9, -60.0], -60.0, (0.0, 0.03)),  # at the threshold counts
        ([-61, -30, -61, -61, -55], -60.0, (0.01, 0.05)),  # quiet windows inside the sound are inside
        ([-75, -65, -75], -70.0, (0.01, 0.02)),
    ],
)
def test_cues(db: list[float], threshold: float, cues: tuple[float, float]) -> None:
    assert Levels(np.array(db), 0.01).cues(threshold) == pytest.approx(cues)


def test_no_loud_window_is_an_error() -> None:
    with pytest.raises(ValueError, match="no 10 ms window"):
        Levels(np.array([INF, -70.0]), 0.01).cues(-60.0)


def test_loudest_outside() -> None:
    levels = Levels(np.array([-80.0, -40.0, -20.0, -45.0, -90.0]), 0.01)
    assert levels.loudest_after(0.03) == -45.0  # windows wholly after 30 ms: 3 and 4
    assert levels.loudest_after(0.035) == -90.0
    assert levels.loudest_after(0.05) == INF
    assert levels.loudest_before(0.02) == -40.0
    assert levels.loudest_before(-0.01) == INF  # nothing lies before the start


def test_a_dc_offset_is_level_or_not_as_asked() -> None:
    dc = np.full(4410, 0.01)  # 100 ms of a -40 dBFS DC offset and nothing else, at 44.1 kHz
    assert levels(dc, 44100).db == pytest.approx([-40.0] * 10)
    assert (levels(dc, 44100, without_dc=True).db < -200).all()
