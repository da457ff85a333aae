"""What a video is, from yt-dlp's info: the fields in their order, the "Artist - Title" split, the cleaning."""

from __future__ import annotations

from typing import Any

import pytest

from djamms_edge.shared.song_details import MAX_ARTIST, MAX_TITLE, SongDetails, clean_text, describe, split_title

CASES: list[tuple[dict[str, Any], SongDetails | None]] = [
    # YouTube Music's metadata wins over the video's title.
    ({"track": "Never Gonna Give You Up", "artists": ["Rick Astley"], "title": "Rick Astley - Never Gonna (Official)",
      "uploader": "RickAstleyVEVO", "duration": 213}, SongDetails("Rick Astley", "Never Gonna Give You Up", 213.0)),
    ({"track": "Under Pressure", "artist": "Queen, David Bowie"},
     SongDetails("Queen, David Bowie", "Under Pressure", None)),
    ({"track": "Song", "artists": ["A", "B"]}, SongDetails("A, B", "Song", None)),
    # "Artist - Title", noise dropped, split at the first separator only.
    ({"title": "Daft Punk - One More Time (Official Video)", "uploader": "Daft Punk"},
     SongDetails("Daft Punk", "One More Time", None)),
    ({"title": "Nirvana – Smells Like Teen Spirit [HD] - Live", "channel": "x"},
     SongDetails("Nirvana", "Smells Like Teen Spirit - Live", None)),
    ({"title": "AC/DC -- Thunderstruck (Remastered 2003)"},
     SongDetails("AC/DC", "Thunderstruck (Remastered 2003)", None)),
    # A hyphen inside a word is no separator: the channel names the artist.
    ({"title": "Ob-La-Di, Ob-La-Da", "uploader": "The Beatles - Topic"},
     SongDetails("The Beatles", "Ob-La-Di, Ob-La-Da", None)),
    ({"title": "Bohemian Rhapsody (Official Video Remastered)", "channel": "Queen Official"},
     SongDetails("Queen Official", "Bohemian Rhapsody", None)),
    # Too little to go by.
    ({"title": "just a title"}, None),
    ({"uploader": "someone"}, None),
    ({"title": "\u202e\u200b", "uploader": "x"}, None),
    ({"title": 7, "uploader": ["x"]}, None),
]


@pytest.mark.parametrize(("info", "expected"), CASES)
def test_describe(info: dict[str, Any], expected: SongDetails | None) -> None:
    assert describe(info) == expected


def test_the_measured_length_wins_and_nonsense_lengths_are_dropped() -> None:
    info = {"title": "A - B", "duration": 300}
    assert describe(info, measured_s=212.4) == SongDetails("A", "B", 212.4)
    for bad in (float("nan"), float("inf"), -1, 0, 10**9, True, "300"):
        assert describe({**info, "duration": bad}) == SongDetails("A", "B", None)


@pytest.mark.parametrize(("raw", "cleaned"), [
    ("  Never\tGonna\r\n Give  ", "Never Gonna Give"),
    ("\u202eyeltsA kciR\u202c", "yeltsA kciR"),  # bidi override and pop dropped: shown as sent, never flipped
    ("zero\u200bwidth\ufeff", "zerowidth"),
    ("bell\x07 esc\x1b[0m", "bell esc[0m"),
    ("private\ue000use", "privateuse"),
    ("Cafe\u0301", "Caf\u00e9"),  # NFC
    (None, ""),
    (["x"], ""),
])
def test_clean_text(raw: object, cleaned: str) -> None:
    assert clean_text(raw, 100) == cleaned


def test_long_text_is_cut_with_an_ellipsis_within_its_bound() -> None:
    title = clean_text("x" * 10_000, MAX_TITLE)
    assert len(title) == MAX_TITLE and title.endswith("\u2026")
    assert len(clean_text("y " * 10_000, MAX_ARTIST)) == MAX_ARTIST


def test_split_title_needs_both_sides() -> None:
    assert split_title(" - Title") is None
    assert split_title("Artist - ") is None
    assert split_title("Artist - Title") == ("Artist", "Title")
