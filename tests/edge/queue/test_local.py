"""The local playlist: what a playlist file or directory turns into, and the local queue over SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from djamms_edge.edge.queue.config import QueueConfig
from djamms_edge.edge.queue.local import (
    LocalQueue,
    PlaylistError,
    load_playlist,
    parse_playlist,
    playlist_entry,
    playlist_problems,
)
from djamms_edge.edge.queue.model import EntryKind
from djamms_edge.edge.queue.source import Outcome
from djamms_edge.edge.state import PlaybackState


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param("songs/a.m4a", ["/base/songs/a.m4a"], id="relative-path-is-relative-to-the-file"),
        pytest.param("/music/b.webm", ["/music/b.webm"], id="absolute-path"),
        pytest.param("https://media.example/c.mp4", ["https://media.example/c.mp4"], id="http-url"),
        pytest.param("dQw4w9WgXcQ", ["dQw4w9WgXcQ"], id="video-id"),
        pytest.param("# a comment", [], id="comment"),
        pytest.param("   ", [], id="blank"),
        pytest.param("file:///etc/passwd", [], id="other-schemes-refused"),
    ],
)
def test_playlist_lines(line: str, expected: list[str]) -> None:
    sources, _ = parse_playlist(line + "\n", Path("/base"))
    assert sources == expected


def test_a_bad_line_is_reported_with_its_number_and_the_rest_is_kept() -> None:
    sources, problems = parse_playlist("a.m4a\nftp://x/y\nb.m4a\n", Path("/base"))
    assert sources == ["/base/a.m4a", "/base/b.m4a"]
    assert problems == ["line 2: not an http(s) URL: 'ftp://x/y'"]


@pytest.mark.parametrize(
    ("source", "artist", "title"),
    [
        ("/m/ABBA - Waterloo.m4a", "ABBA", "Waterloo"),
        ("/m/Just a title.mp3", "", "Just a title"),
        ("https://media.example/Blur%20-%20Song%202.mp4", "Blur", "Song 2"),
    ],
)
def test_titles_and_artists_come_from_file_names(source: str, artist: str, title: str) -> None:
    entry = playlist_entry(source)
    assert (entry.artist, entry.title, entry.kind) == (artist, title, EntryKind.MAIN)
    assert entry.entry_id == playlist_entry(source).entry_id  # stable: the rotation survives restarts


def test_a_directory_plays_its_media_files_in_name_order(tmp_path: Path) -> None:
    for name in ("b.m4a", "a.mp4", "notes.txt", "c.WEBM"):
        (tmp_path / name).write_bytes(b"")
    assert [Path(e.source).name for e in load_playlist(tmp_path)] == ["a.mp4", "b.m4a", "c.WEBM"]


def test_a_missing_playlist_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PlaylistError, match=r"nope\.txt"):
        load_playlist(tmp_path / "nope.txt")


def test_check_config_reports_an_unreadable_or_empty_playlist(tmp_path: Path) -> None:
    assert playlist_problems(QueueConfig()) == []
    assert "nope.txt" in playlist_problems(QueueConfig(playlist=str(tmp_path / "nope.txt")))[0]
    assert playlist_problems(QueueConfig(playlist=str(tmp_path))) == [f"edge.queue.playlist: {tmp_path} lists no media"]
    (tmp_path / "song.m4a").write_bytes(b"")
    assert playlist_problems(QueueConfig(playlist=str(tmp_path))) == []


async def test_paid_requests_are_consumed_when_they_start_and_failures_are_remembered(tmp_path: Path) -> None:
    db = PlaybackState.database(tmp_path)
    await db.open()
    try:
        state = PlaybackState(db)
        songs = [playlist_entry(f"/m/{n}.m4a") for n in ("one", "two")]
        now = [1000.0]
        queue = LocalQueue(state, songs, QueueConfig(retry_unplayable_s=60), clock=lambda: now[0])
        changes: list[int] = []
        queue.subscribe(lambda: changes.append(1))
        paid = await queue.request("/m/paid.m4a", title="paid")
        assert changes == [1]
        assert [e.title for e in await queue.upcoming(3)] == ["paid", "one", "two"]
        await queue.started(paid)
        assert [e.title for e in await queue.upcoming(2)] == ["one", "two"]
        await queue.finished(songs[0], Outcome.FAILED, "file missing")
        assert [e.title for e in await queue.upcoming(2)] == ["two", "two"]
        now[0] += 61  # the mark expires: the file may have appeared
        assert [e.title for e in await queue.upcoming(2)] == ["one", "two"]
    finally:
        await db.close()
