"""Rows to records: pure mappers any store backend can use.

A row is anything indexable by column name (``sqlite3.Row``, ``asyncpg.Record``);
both hub schemas use the same column names, so each mapper fits either backend.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from djamms_edge.hub.store.base import (
    Analysis,
    CatalogTrack,
    Conflict,
    DeviceRecord,
    DeviceReport,
    Json,
    KnownDuration,
    Mark,
    MasterInfo,
    NowPlaying,
    Offsets,
    Playlist,
    QueueEntry,
    RegistryAnswer,
    RequestRecord,
    ScheduleSlot,
    Song,
    UnknownEntry,
    User,
    Venue,
    VenueSettings,
)


class Row(Protocol):
    def __getitem__(self, key: str, /) -> Any: ...


def user_of(row: Row) -> User:
    return User(row["user_id"], row["email"], row["venue_id"], row["role"], bool(row["autoplay"]),
                int(row["token_version"]))


VENUE_COLUMNS = "venue_id, name, active_playlist_id, timezone"


def venue_of(row: Row) -> Venue:
    """A row with VENUE_COLUMNS."""
    return Venue(row["venue_id"], row["name"], row["active_playlist_id"], row["timezone"])


def device_of(row: Row) -> DeviceRecord:
    now_playing = json.loads(row["now_playing"]) if row["now_playing"] else None
    report = DeviceReport(row["software_version"], now_playing, tuple(json.loads(row["problems"])), row["user_agent"])
    return DeviceRecord(row["venue_id"], row["device_id"], int(row["token_version"]), bool(row["revoked"]), report,
                        row["reported_at_ms"])


def report_columns(report: DeviceReport) -> tuple[str | None, str | None, str | None, str]:
    """A report as the devices table's software_version, user_agent, now_playing and problems columns."""
    now_playing = None if report.now_playing is None else json.dumps(report.now_playing)
    return report.version, report.user_agent, now_playing, json.dumps(list(report.problems))


def request_of(row: Row) -> RequestRecord:
    return RequestRecord(row["request_id"], row["venue_id"], row["payment_id"], row["requester_id"], song_of(row),
                         row["status"], row["reason"], row["created_at_ms"])


def playlist_of(row: Row, tracks: list[Any]) -> Playlist:
    """``row`` joined with its venue's active_playlist_id; ``tracks`` its playlist_tracks rows in order."""
    return Playlist(row["playlist_id"], row["venue_id"], row["name"], tuple(track_of(t) for t in tracks),
                    row["active_playlist_id"] == row["playlist_id"], bool(row["requestable"]))


def settings_of(row: Row) -> VenueSettings:
    """A venues row's console settings."""
    return VenueSettings(bool(row["allow_explicit"]), row["max_duration_s"], row["artist_limit"], row["timezone"])


def mark_of(row: Row) -> Mark:
    return Mark(row["mark_id"], row["kind"], row["value"])


def slot_of(row: Row) -> ScheduleSlot:
    return ScheduleSlot(row["slot_id"], row["playlist_id"], row["weekday"], row["start_minute"], row["end_minute"])


def song_of(row: Row) -> Song:
    return Song(row["video_id"], row["title"], row["artist"], row["duration"])


def track_of(row: Row) -> Song:
    """A playlist_tracks (or KNOWN_SONG) row: the song with who described it."""
    return Song(row["video_id"], row["title"], row["artist"], row["duration"], row["details_by"])


def entry_of(row: Row) -> QueueEntry:
    return QueueEntry(row["entry_id"], row["queue"], song_of(row), row["request_id"], row["requester_id"],
                      row["paid_credit"])


def now_playing_of(row: Row) -> NowPlaying:
    """A NOW_PLAYING row."""
    return NowPlaying(entry_of(row), row["started_at_ms"], row["device_id"], row["epoch"], row["position_s"],
                      row["position_at_ms"], row["ended_at_ms"])


# The venue's now playing with the last position any of its boxes reported for that entry (a box that
# resumed it after a take-over reports on its own registry row).
_LAST_POSITION = (
    "(SELECT p.{column} FROM players p WHERE p.venue_id = n.venue_id AND p.position_entry_id = n.entry_id"
    " ORDER BY p.position_at_ms DESC LIMIT 1)"
)
NOW_PLAYING = (
    "SELECT n.*, " + _LAST_POSITION.format(column="position_s") + " AS position_s, "
    + _LAST_POSITION.format(column="position_at_ms") + " AS position_at_ms"
    " FROM now_playing n WHERE n.venue_id = {venue}"
)


def master_of(row: Row) -> MasterInfo:
    return MasterInfo(row["device_id"], row["epoch"], row["last_heartbeat_ms"], row["player_id"], row["instance_id"])


def second_process_refused(master: MasterInfo) -> RegistryAnswer:
    """The answer to another process of the lease-holding device (a copied token): conflict, the holder named."""
    return RegistryAnswer("conflict", master.epoch, None, master.device_id, master.last_heartbeat_ms,
                          second_process=True)


# The catalog as one venue sees it: its own override (if any) beside the global one. With no venue
# (NULL) the join finds nothing and venue_set is false.
CATALOG_FOR_VENUE = (
    "SELECT c.*, v.override_start AS venue_start, v.override_end AS venue_end, v.video_id IS NOT NULL AS venue_set,"
    " a.duration AS own_duration, a.analysis_start AS own_start, a.analysis_end AS own_end,"
    " a.loudness AS own_loudness, a.analysed_by AS own_by, a.video_id IS NOT NULL AS own_set"
    " FROM catalog c LEFT JOIN venue_overrides v ON v.video_id = c.video_id AND v.venue_id = {venue}"
    " LEFT JOIN venue_analyses a ON a.video_id = c.video_id AND a.venue_id = {venue}"
)


# Lengths of a video the hub trusts more than a box (rules.plausible_analysis): what staff declared on
# playlists (with their venue) and an admin's analysis (no venue).
KNOWN_DURATIONS = (
    "SELECT p.venue_id AS venue_id, t.duration AS seconds"
    " FROM playlist_tracks t JOIN playlists p ON p.playlist_id = t.playlist_id"
    " WHERE t.video_id = {p} AND t.duration > 0 AND t.details_by IS NULL"  # a box's word is not staff's
    " UNION SELECT NULL, trusted_duration FROM catalog WHERE video_id = {p} AND trusted_duration IS NOT NULL"
)


def known_duration_of(row: Row) -> KnownDuration:
    return KnownDuration(float(row["seconds"]), row["venue_id"])


def venue_analysis_of(row: Row) -> Analysis:
    """A venue_analyses row: one venue's boxes' measurement of a video."""
    return Analysis(row["video_id"], row["duration"], row["analysis_start"], row["analysis_end"], row["loudness"],
                    row["analysed_by"], row["venue_id"])


def catalog_track_of(row: Row, *, for_venue: bool = False) -> CatalogTrack:
    """A catalog row; ``for_venue``: a CATALOG_FOR_VENUE row, with the venue's override."""
    override = Offsets(row["override_start"], row["override_end"]) if row["override_set"] else None
    venue_override = Offsets(row["venue_start"], row["venue_end"]) if for_venue and row["venue_set"] else None
    if for_venue and row["own_set"]:  # the venue's own boxes measured it: that, where they did, beats the shared
        def own(key: str, shared: str) -> Any:
            return row[key] if row[key] is not None else row[shared]

        return CatalogTrack(row["video_id"], own("own_duration", "duration"),
                            Offsets(own("own_start", "analysis_start"), own("own_end", "analysis_end")),
                            own("own_loudness", "loudness"), override, row["own_by"], venue_override)
    return CatalogTrack(row["video_id"], row["duration"], Offsets(row["analysis_start"], row["analysis_end"]),
                        row["loudness"], override, row["analysed_by"], venue_override)


# A song the hub has seen, by video id: from a playlist, else from a request ({p}: the placeholder).
# The venue's songs added by URL alone that no box has described yet (placeholders: venue, limit).
PENDING_SONGS = (
    "SELECT t.video_id FROM playlist_tracks t JOIN playlists p ON p.playlist_id = t.playlist_id"
    " WHERE p.venue_id = {venue} AND t.title = '' AND t.artist = ''"
    " GROUP BY t.video_id ORDER BY MIN(p.created_at_ms), MIN(t.position) LIMIT {limit}"
)


# A song as ``known_songs`` finds it for venue {v} (NULL: any venue): what staff typed on any playlist first, then
# what patrons' requests named at that venue, then what that venue's own box described; never a pending song.
# One venue's box never describes a song for another.
KNOWN_SONG = (
    "SELECT * FROM ("
    "SELECT t.video_id, t.title, t.artist, t.duration, t.details_by"
    " FROM playlist_tracks t JOIN playlists p ON p.playlist_id = t.playlist_id"
    " WHERE t.video_id = {p} AND t.title != '' AND (t.details_by IS NULL OR p.venue_id = {v})"
    " UNION ALL SELECT video_id, title, artist, duration, NULL FROM requests"
    " WHERE video_id = {p} AND ({v} IS NULL OR venue_id = {v})"
    ") known ORDER BY details_by IS NOT NULL LIMIT 1"
)


def track_at(playlist: Playlist, position: int, video_id: str) -> Song:
    """The track at ``position`` (1-based), checked to be ``video_id``: a list edited meanwhile is a Conflict."""
    if not 1 <= position <= len(playlist.tracks):
        raise UnknownEntry(f"playlist {playlist.playlist_id!r} has no track {position}")
    track = playlist.tracks[position - 1]
    if track.video_id != video_id:
        raise Conflict(f"track {position} is now {track.video_id!r}, not {video_id!r}; reload the playlist")
    return track


def history_json(row: Row) -> Json:
    return {"entryId": row["entry_id"], "videoId": row["video_id"], "requestId": row["request_id"],
            "deviceId": row["device_id"], "epoch": row["epoch"], "playedAt": row["played_at_ms"]}


def device_error_json(row: Row) -> Json:
    return {"errorId": row["id"], "deviceId": row["device_id"], "videoId": row["video_id"],
            "message": row["message"], "at": row["at_ms"], "receivedAt": row["received_at_ms"]}
