"""/metrics text is valid Prometheus exposition format and says what the snapshot says."""

from __future__ import annotations

import dataclasses

from prometheus_client.parser import text_string_to_metric_families

from djamms_edge.edge.status.fake import sample_snapshot
from djamms_edge.edge.status.metrics import render_metrics
from djamms_edge.edge.status.model import HubLink

NOW = 1_800_000_000.0


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_parse_and_match_the_snapshot() -> None:
    snapshot = sample_snapshot(NOW - 2)  # sampled 2 s ago at position 42
    samples = _samples(render_metrics(snapshot, NOW, live_clients=2))
    assert samples[("djamms_edge_role", (("role", "master"),))] == 1
    assert samples[("djamms_edge_role", (("role", "standby"),))] == 0
    assert samples[("djamms_edge_hub_connected", ())] == 1
    assert samples[("djamms_edge_position_seconds", ())] == 44.0
    assert samples[("djamms_edge_track_end_seconds", ())] == 200.25
    assert samples[("djamms_edge_queue_length", (("queue", "priority"),))] == 1
    assert samples[("djamms_edge_queue_length", (("queue", "main"),))] == 2
    assert samples[("djamms_edge_cache_used_bytes", ())] == 1_500_000_000
    assert samples[("djamms_edge_analysis_done_tracks", ())] == 30
    assert samples[("djamms_edge_errors_total", ())] == 1
    assert samples[("djamms_edge_status_live_clients", ())] == 2


def test_idle_offline_box() -> None:
    snapshot = dataclasses.replace(
        sample_snapshot(NOW), role="offline", now_playing=None, hub=HubLink(connected=False, since=NOW)
    )
    samples = _samples(render_metrics(snapshot, NOW, live_clients=0))
    assert samples[("djamms_edge_role", (("role", "offline"),))] == 1
    assert samples[("djamms_edge_playing", ())] == 0
    assert samples[("djamms_edge_position_seconds", ())] == 0
    assert samples[("djamms_edge_hub_connected", ())] == 0


def test_parts_a_box_does_not_run_are_absent_not_zero() -> None:
    snapshot = dataclasses.replace(sample_snapshot(NOW), cache=None, analysis=None)
    names = {name for (name, _labels) in _samples(render_metrics(snapshot, NOW, live_clients=0))}
    assert not {n for n in names if n.startswith(("djamms_edge_cache", "djamms_edge_analysis"))}
    assert "djamms_edge_playing" in names


def test_label_values_are_escaped() -> None:
    venue = 'Bob\'s "Bar"\\Grill\nUpstairs'
    snapshot = dataclasses.replace(sample_snapshot(NOW), venue_id=venue)
    samples = _samples(render_metrics(snapshot, NOW, live_clients=0))
    info = [labels for (name, labels) in samples if name == "djamms_edge_info"]
    assert dict(info[0])["venue"] == venue
