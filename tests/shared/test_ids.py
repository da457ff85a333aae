"""Media ids: a strict pattern, checked before anything runs."""

from __future__ import annotations

import pytest

from djamms_edge.shared.ids import InvalidSource, parse_source


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("dQw4w9WgXcQ", "youtube"),
        ("a-b_c1234567"[:11], "youtube"),
        ("http://127.0.0.1:8000/media/track.mp4", "url"),
        ("https://media.example/v.webm?x=1", "url"),
    ],
)
def test_valid_sources_are_classified(text: str, kind: str) -> None:
    assert parse_source(text).kind == kind


@pytest.mark.parametrize(
    "text",
    [
        "a$(touch /tmp/x)",
        "dQw4w9WgXc",  # 10 characters
        "dQw4w9WgXcQQ",  # 12 characters
        "dQw4w9WgXc;",
        "file:///etc/passwd",
        "ftp://host/x.mp4",
        "http://",
        "https://host/a b.mp4",
        "",
        "--exec=rm",
        "https://host/\ud800.mp4",  # a lone surrogate (JSON "\ud800")
        "https://host/a\udfff",
        "https://host/\x00.mp4",
        "\x00dQw4w9WgXc",
    ],
)
def test_hostile_or_malformed_sources_are_refused(text: str) -> None:
    with pytest.raises(InvalidSource):
        parse_source(text)


def test_urls_can_be_disallowed() -> None:
    with pytest.raises(InvalidSource, match="11-character video id"):
        parse_source("https://host/x.mp4", allow_urls=False)


def test_non_strings_are_refused() -> None:
    with pytest.raises(InvalidSource, match="must be a string"):
        parse_source(12345678901)
