"""The console's pure rules, table by table: song lines, YouTube ids, bans, moves, schedule windows."""

from __future__ import annotations

from datetime import datetime

import pytest

from djamms_edge.edge.queue.rotation import Bans
from djamms_edge.hub.rules import moved, song_refusal
from djamms_edge.hub.schedule import slot_at, venue_time
from djamms_edge.hub.store.base import Mark, ScheduleSlot, Song, VenueRules, VenueSettings
from djamms_edge.hub.tracks_input import BadLine, TrackLine, import_lines, parse_line, song_key, youtube_id

ID = "dQw4w9WgXcQ"


@pytest.mark.parametrize(("text", "expected"), [
    (ID, ID),
    (f" {ID} ", ID),
    (f"https://www.youtube.com/watch?v={ID}&t=42", ID),
    (f"https://m.youtube.com/watch?feature=share&v={ID}", ID),
    (f"https://youtu.be/{ID}?si=abc", ID),
    (f"https://www.youtube.com/shorts/{ID}", ID),
    (f"https://music.youtube.com/watch?v={ID}", ID),
    ("https://www.youtube.com/watch?v=short", None),
    (f"https://evil.example/watch?v={ID}", None),
    (f"ftp://youtu.be/{ID}", None),
    ("not a video", None),
])
def test_youtube_ids_from_what_staff_paste(text: str, expected: str | None) -> None:
    assert youtube_id(text) == expected


def test_other_media_urls_only_where_the_hub_allows_them() -> None:
    url = "https://media.example/bar/song.mp4"
    assert song_key(url, allow_urls=False) is None
    assert song_key(url, allow_urls=True) == url
    assert song_key(f"https://youtu.be/{ID}", allow_urls=True) == ID


@pytest.mark.parametrize(("line", "expected"), [
    (ID, TrackLine(ID)),
    (f"https://youtu.be/{ID} | Rick Astley | Never Gonna | 3:33", TrackLine(ID, "Rick Astley", "Never Gonna", 213)),
    (f"{ID}|A|T|1:02:03", TrackLine(ID, "A", "T", 3723)),
    (f"{ID} | A | T | 200", TrackLine(ID, "A", "T", 200.0)),
])
def test_song_lines(line: str, expected: TrackLine) -> None:
    assert parse_line(line) == expected


@pytest.mark.parametrize("line", ["nothing", f"{ID} | only artist", f"{ID} | A | T | 3m", f"{ID} |  | T | 3:00",
                                  f"{ID} | A | T | 3:00 | extra"])
def test_bad_song_lines_say_why(line: str) -> None:
    with pytest.raises(BadLine):
        parse_line(line)


def test_import_skips_blanks_and_comments_and_keeps_line_numbers() -> None:
    assert import_lines(f"# list\n\n{ID}\n  \n x \n") == [(3, ID), (5, "x")]


def rules(*marks: tuple[str, str], allow_explicit: bool = True) -> VenueRules:
    return VenueRules(VenueSettings(allow_explicit), tuple(Mark(f"m{i}", k, v) for i, (k, v) in  # type: ignore[arg-type]
                                                            enumerate(marks)))


@pytest.mark.parametrize(("venue", "song", "refused"), [
    (rules(), Song(ID, "t", "Anyone", 200), False),
    (rules(("ban_video", ID)), Song(ID, "t", "Anyone", 200), True),
    (rules(("ban_artist", "The  Band")), Song("aaaaaaaaaaa", "t", " the band ", 200), True),
    (rules(("ban_artist", "The Band")), Song("aaaaaaaaaaa", "t", "The Bandits", 200), False),
    (rules(("explicit", ID)), Song(ID, "t", "a", 200), False),
    (rules(("explicit", ID), allow_explicit=False), Song(ID, "t", "a", 200), True),
])
def test_what_a_venue_refuses(venue: VenueRules, song: Song, refused: bool) -> None:
    assert (song_refusal(song, venue) is not None) == refused


def test_the_edge_bans_what_the_hub_bans() -> None:
    json_rules = rules(("ban_artist", "The  Band"), ("ban_video", "bbbbbbbbbbb"), ("explicit", ID),
                       allow_explicit=False).to_json()
    bans = Bans.from_rules(json_rules)
    assert bans.bans("aaaaaaaaaaa", "the band") and bans.bans("bbbbbbbbbbb", "x") and bans.bans(ID, "x")
    assert not bans.bans("aaaaaaaaaaa", "Other")
    assert not Bans.from_rules({**json_rules, "allowExplicit": True}).bans(ID, "x")
    assert not Bans.from_rules(None).bans(ID, "x")


@pytest.mark.parametrize(("index", "to", "expected"), [
    (0, 2, "bca"), (2, 0, "cab"), (1, 1, "abc"), (0, 99, "bca"), (2, -5, "cab"),
])
def test_moves(index: int, to: int, expected: str) -> None:
    assert "".join(moved("abc", index, to)) == expected


EVENING = ScheduleSlot("s-eve", "pl-eve", 4, 18 * 60, 23 * 60)  # Friday 18:00-23:00
LATE = ScheduleSlot("s-late", "pl-late", 4, 22 * 60, 24 * 60)  # Friday 22:00-24:00 (overlaps the evening)


@pytest.mark.parametrize(("local", "expected"), [
    (datetime(2031, 1, 10, 17, 59), None),  # a Friday
    (datetime(2031, 1, 10, 18, 0), EVENING),
    (datetime(2031, 1, 10, 22, 30), LATE),  # of two windows, the one that started last
    (datetime(2031, 1, 10, 23, 59), LATE),
    (datetime(2031, 1, 11, 0, 0), None),  # Saturday
    (datetime(2031, 1, 3, 19, 0), EVENING),  # the week before
])
def test_schedule_windows(local: datetime, expected: ScheduleSlot | None) -> None:
    assert slot_at([EVENING, LATE], local) == expected


def test_venue_time_follows_the_timezone_and_its_daylight_saving() -> None:
    summer = venue_time(datetime.fromisoformat("2031-07-04T20:30:00+00:00").timestamp(), "Europe/Paris")
    assert (summer.hour, summer.minute) == (22, 30)
    winter = venue_time(datetime.fromisoformat("2031-01-04T20:30:00+00:00").timestamp(), "Europe/Paris")
    assert winter.hour == 21
    assert venue_time(0, "No/Such_Zone").utcoffset() is not None  # falls back to UTC rather than failing
