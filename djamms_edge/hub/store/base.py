"""The hub's storage interface and the records it speaks in.

Every rule that must hold under concurrency (one master per venue, a magic link
consumed once, the per-artist request limit, idempotent paymentIds, epoch
fencing) is ONE method here, implemented by a backend as one transaction. The
SQLite backend lives in ``sqlite.py``; a PostgreSQL backend implements the same
protocol. Clocks are passed in (``now_ms``) so rules are testable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from djamms_edge.hub.ratelimit import RateLimiter

Role = Literal["admin", "owner", "staff"]  # an owner is staff of their venue who also runs its team
QueueName = Literal["priority", "main"]
RequestStatus = Literal["pending", "played", "refund_due"]
Json = dict[str, Any]

# Shared by every backend, so both stores behave alike.
PAID_CREDIT = 0.5  # the reference's per-request queue weight
PRUNE_EVERY = 100  # versions between prunes of the change log
DAY_MS = 86_400_000
KEEP_WRITES_MS = 7 * DAY_MS  # idempotency keys and old leases: an edge's outbox never lags a week
KEEP_DEVICE_ERRORS_MS = 30 * DAY_MS  # long enough for staff to look into a month of trouble
# What refuse_request may turn into refund_due: an accepted request not yet played (nor refused).
REFUSABLE_STATUSES: tuple[RequestStatus, ...] = ("pending",)


# --- errors --------------------------------------------------------------------------------------


class StoreError(Exception):
    """A rule the store refused; the message is safe to show to the client."""


class StoreUnavailable(Exception):
    """The store cannot be reached or opened at all (an operator's problem, never a client's)."""


class UnknownVenue(StoreError):
    pass


class UnknownPlaylist(StoreError):
    pass


class UnknownEntry(StoreError):
    pass


class UnknownRequest(StoreError):
    pass


class Conflict(StoreError):
    """The change does not fit the current state (a moved track, an active playlist deleted); 409."""


class InvalidMagicLink(StoreError):
    pass


class UserNotFound(StoreError):
    pass


class UnknownDevice(StoreError):
    pass


class StaleEpoch(StoreError):
    """A master-only write carried an epoch (or device) that no longer holds the venue's lease."""

    def __init__(self, current_epoch: int, holder: str | None) -> None:
        self.current_epoch = current_epoch
        self.holder = holder
        who = f"device {holder!r}" if holder else "no device"
        super().__init__(f"not the venue's master: current epoch is {current_epoch}, held by {who}")


# --- records -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    email: str
    venue_id: str | None
    role: Role
    autoplay: bool = True
    token_version: int = 0  # tokens carry it; a role or venue change, sign-out everywhere bump it

    def to_json(self) -> Json:
        return {
            "userId": self.user_id,
            "email": self.email,
            "venueId": self.venue_id,
            "role": self.role,
            "autoplay": self.autoplay,
        }


@dataclass(frozen=True, slots=True)
class Song:
    video_id: str
    title: str
    artist: str
    duration: float
    # Who described it: None, staff (or the client that sent it); a device id, its venue's box, from what
    # yt-dlp said when it fetched the song (shared/song_details.py). A box's word counts for its venue only.
    details_by: str | None = None

    @property
    def pending(self) -> bool:
        """Added by URL alone and not yet described by the venue's box: no title, artist or length."""
        return not self.title and not self.artist

    def to_json(self) -> Json:
        data: Json = {"videoId": self.video_id, "title": self.title, "artist": self.artist, "duration": self.duration}
        if self.pending:
            data["detailsPending"] = True
        elif self.details_by is not None:
            data["detailsFrom"] = "box"
        return data


def pending_song(video_id: str) -> Song:
    """A song staff added by URL or id alone, that the hub knows nothing of yet: its box will describe it."""
    return Song(video_id, "", "", 0.0)


@dataclass(frozen=True, slots=True)
class RegistryTimings:
    stale_ms: int
    expire_ms: int
    # A process of the lease-holding device other than the one holding it is refused while the holder
    # beat within this (a copied token); a quieter holder has crashed or restarted and is replaced.
    instance_grace_ms: int = 15_000


@dataclass(frozen=True, slots=True)
class RegistryAnswer:
    """The reference's register/heartbeat answer, plus the fencing epoch."""

    status: Literal["registered", "reconnected", "conflict", "updated", "not_found", "released"]
    epoch: int
    player_id: str | None = None
    master_device: str | None = None
    master_heartbeat_ms: int | None = None

    second_process: bool = False  # refused: another process of this device holds the lease

    def to_json(self) -> Json:
        body: Json = {"status": self.status}
        if self.player_id is not None:
            body["playerId"] = self.player_id
        if self.master_device is not None and self.status in ("reconnected", "conflict"):
            body["currentMaster"] = {
                "deviceId": self.master_device,
                "lastHeartbeat": self.master_heartbeat_ms,
                "epoch": self.epoch,
            }
        if self.second_process:
            body["reason"] = "second_process"
        body["epoch"] = self.epoch
        return body


@dataclass(frozen=True, slots=True)
class MasterInfo:
    device_id: str
    epoch: int
    last_heartbeat_ms: int
    player_id: str
    instance_id: str | None = None  # the holding process (register/heartbeat ``instanceId``)


@dataclass(frozen=True, slots=True)
class RequestRules:
    max_duration_s: float
    artist_limit: int
    artist_window_ms: int
    refusal: str | None = None  # the venue takes this song at all? (rules.song_refusal: banned, explicit)


@dataclass(frozen=True, slots=True)
class PaidRequest:
    venue_id: str
    song: Song
    payment_id: str
    requester_id: str | None
    client_address: str
    request_id: str | None = None  # chosen before a payment, so the payment and the request share it


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    request_id: str
    accepted: bool
    error: str | None
    replayed: bool  # the paymentId was seen before; nothing changed this time
    status: RequestStatus


@dataclass(frozen=True, slots=True)
class RequestRecord:
    request_id: str
    venue_id: str
    payment_id: str
    requester_id: str | None
    song: Song
    status: RequestStatus
    reason: str | None
    created_at_ms: int

    def to_json(self) -> Json:
        return {
            "requestId": self.request_id,
            "venueId": self.venue_id,
            "paymentId": self.payment_id,
            "requesterId": self.requester_id,
            "song": self.song.to_json(),
            "status": self.status,
            "reason": self.reason,
            "timestamp": self.created_at_ms,
        }


@dataclass(frozen=True, slots=True)
class Refusal:
    """What refuse_request did: the request as it stands now; ``changed`` only for the call that refused it."""

    request: RequestRecord
    changed: bool
    removed_entry_ids: tuple[str, ...] = ()

    def to_json(self) -> Json:
        return {"request": self.request.to_json(), "changed": self.changed,
                "removedEntryIds": list(self.removed_entry_ids)}


@dataclass(frozen=True, slots=True)
class Offsets:
    """A track's trimmed play range; ``None`` ends mean 'the whole file'."""

    start: float | None
    end: float | None


@dataclass(frozen=True, slots=True)
class CatalogTrack:
    video_id: str
    duration: float | None
    analysis: Offsets
    loudness: float | None
    override: Offsets | None  # global, set by an admin
    analysed_by: str | None = None
    venue_override: Offsets | None = None  # the asking venue's own, set by its staff

    @property
    def effective(self) -> Offsets:
        # Field by field: the venue's override, else the global one, else the analysis.
        start, end = self.analysis.start, self.analysis.end
        for override in (self.override, self.venue_override):
            if override is not None:
                start = override.start if override.start is not None else start
                end = override.end if override.end is not None else end
        return Offsets(start, end)

    @property
    def source(self) -> str:
        if self.venue_override is not None:
            return "venue_override"
        if self.override is not None:
            return "override"
        return "analysis" if self.analysed_by else "none"

    def to_json(self) -> Json:
        eff = self.effective
        return {
            "videoId": self.video_id,
            "duration": self.duration,
            "realStartOffset": eff.start,
            "realEndOffset": eff.end,
            "loudness": self.loudness,
            "source": self.source,
            "analysis": {"realStartOffset": self.analysis.start, "realEndOffset": self.analysis.end,
                         "deviceId": self.analysed_by},
            "override": _offsets_json(self.override),
            "venueOverride": _offsets_json(self.venue_override),
        }


def _offsets_json(offsets: Offsets | None) -> Json | None:
    return None if offsets is None else {"realStartOffset": offsets.start, "realEndOffset": offsets.end}


@dataclass(frozen=True, slots=True)
class Analysis:
    video_id: str
    duration: float | None
    real_start_offset: float | None
    real_end_offset: float | None
    loudness: float | None
    device_id: str
    # The reporting box's venue: its analysis is that venue's own until a box of another venue agrees
    # (``rules.analyses_agree``); None (an admin) writes the shared value at once.
    venue_id: str | None = None


@dataclass(frozen=True, slots=True)
class KnownDuration:
    """A video's length from a source the hub trusts more than one venue's box: an admin's analysis
    (``venue_id`` None), or what a venue's staff declared for it on a playlist (the import's ``m:ss``)."""

    seconds: float
    venue_id: str | None


@dataclass(frozen=True, slots=True)
class Playlist:
    playlist_id: str
    venue_id: str
    name: str
    tracks: tuple[Song, ...] = ()
    active: bool = False
    requestable: bool = False  # patrons may request songs from it (the patron page lists it)

    def to_json(self) -> Json:
        return {
            "playlistId": self.playlist_id,
            "venueId": self.venue_id,
            "name": self.name,
            "active": self.active,
            "requestable": self.requestable,
            "tracks": [t.to_json() for t in self.tracks],
        }


@dataclass(frozen=True, slots=True)
class QueueEntry:
    entry_id: str
    queue: QueueName
    song: Song
    request_id: str | None = None
    requester_id: str | None = None
    paid_credit: float = 0.0

    def to_json(self) -> Json:
        """The device/staff view: everything, including who asked."""
        return {
            "entryId": self.entry_id,
            "queue": self.queue,
            **self.song.to_json(),
            "isRequest": self.request_id is not None,
            "paidCredit": self.paid_credit,
            "requestId": self.request_id,
            "requesterId": self.requester_id,
        }


@dataclass(frozen=True, slots=True)
class NowPlaying:
    entry: QueueEntry
    started_at_ms: int
    device_id: str
    epoch: int
    # The last position (media seconds) a box reported for this entry in its heartbeat, and when: a box
    # taking over after a crash resumes from there.
    position_s: float | None = None
    position_at_ms: int | None = None
    ended_at_ms: int | None = None  # its play was reported (played): nothing to resume

    def to_json(self) -> Json:
        return {**self.entry.to_json(), "startedAt": self.started_at_ms, "deviceId": self.device_id,
                "epoch": self.epoch, "position": self.position_s, "positionAt": self.position_at_ms,
                "endedAt": self.ended_at_ms}


@dataclass(frozen=True, slots=True)
class PlayPosition:
    """Where the master's player is (from its heartbeat): ``seconds`` of media time into ``entry_id``."""

    entry_id: str
    seconds: float


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    venue_id: str
    version: int
    epoch: int
    now_playing: NowPlaying | None
    priority: tuple[QueueEntry, ...]
    main: tuple[QueueEntry, ...]
    master: MasterInfo | None = None
    rules: VenueRules | None = None

    def to_json(self) -> Json:
        return {
            "venueId": self.venue_id,
            "version": self.version,
            "epoch": self.epoch,
            "master": None if self.master is None else {"deviceId": self.master.device_id, "epoch": self.master.epoch},
            "nowPlaying": None if self.now_playing is None else self.now_playing.to_json(),
            "priorityQueue": [e.to_json() for e in self.priority],
            "mainQueue": [e.to_json() for e in self.main],
            "rules": None if self.rules is None else self.rules.to_json(),
        }


@dataclass(frozen=True, slots=True)
class Change:
    version: int
    data: Json  # {"type": ..., ...}; see docs/hub-api.md "Change feed"


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """Changes after a version, or a snapshot when the log no longer reaches back that far."""

    version: int
    changes: tuple[Change, ...] = ()
    snapshot: QueueSnapshot | None = None
    more: bool = False


@dataclass(frozen=True, slots=True)
class MasterWrite:
    """Who claims to be master: checked against the venue's current lease in the same transaction."""

    venue_id: str
    device_id: str
    epoch: int
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class PlayReport:
    entry_id: str | None
    song: Song | None
    played_at_ms: int
    request_id: str | None = None  # the entry's requestId, so a paid request is marked played


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Answer of a master write; ``replayed`` when the idempotency key was seen before."""

    body: Json
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class DeviceError:
    """An edge's report of something that went wrong (a download, a track that would not play)."""

    venue_id: str
    device_id: str
    idempotency_key: str  # per device: a resent report is stored once
    message: str
    video_id: str | None
    at_ms: int  # when it happened on the edge (it may arrive much later, after an outage)


@dataclass(frozen=True, slots=True)
class Venue:
    venue_id: str
    name: str
    active_playlist_id: str | None = None
    timezone: str = "UTC"  # IANA name: the venue's day (today's requests) and schedule

    def to_json(self) -> Json:
        return {"venueId": self.venue_id, "name": self.name, "activePlaylistId": self.active_playlist_id,
                "timezone": self.timezone}


@dataclass(frozen=True, slots=True)
class DeviceReport:
    """What a box says about itself with each register/heartbeat, for the staff dashboard."""

    version: str | None = None
    now_playing: Json | None = None  # {"entryId", "videoId", "title", "artist", "position", "duration"}
    problems: tuple[str, ...] = ()  # `djamms-edge doctor`'s findings, one line each
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class Liveness:
    """What beats answered from the hub's memory said (hub/leases.py), written behind them: the newest beat
    time, position and report. Written only to the row still active at ``epoch`` for this process."""

    venue_id: str
    device_id: str
    epoch: int
    instance_id: str | None
    beat_ms: int
    position: PlayPosition | None = None
    position_ms: int | None = None
    report: DeviceReport | None = None
    report_ms: int | None = None


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A box known at a venue: its credential state and its last report."""

    venue_id: str
    device_id: str
    token_version: int
    revoked: bool
    report: DeviceReport
    reported_at_ms: int | None

    def to_json(self) -> Json:
        return {"deviceId": self.device_id, "venueId": self.venue_id, "revoked": self.revoked,
                "version": self.report.version, "nowPlaying": self.report.now_playing,
                "problems": list(self.report.problems), "userAgent": self.report.user_agent,
                "reportedAt": self.reported_at_ms}


PairingStatus = Literal["pending", "claimed", "delivered", "unknown"]


@dataclass(frozen=True, slots=True)
class PairingState:
    """Where a box's pairing stands; ``claimed`` carries what its token is made of (handed out once)."""

    status: PairingStatus
    device_id: str | None = None
    venue_id: str | None = None
    token_version: int | None = None
    expires_at_ms: int | None = None


MarkKind = Literal["ban_video", "ban_artist", "explicit"]
MARK_KINDS: tuple[MarkKind, ...] = ("ban_video", "ban_artist", "explicit")


@dataclass(frozen=True, slots=True)
class Mark:
    """A venue's mark on a song: banned by video id or by artist, or flagged explicit."""

    mark_id: str
    kind: MarkKind
    value: str  # a video id, or an artist as staff typed it

    def to_json(self) -> Json:
        return {"markId": self.mark_id, "kind": self.kind, "value": self.value}


@dataclass(frozen=True, slots=True)
class VenueSettings:
    """What staff set for their venue's requests; None limits mean the hub's configured default."""

    allow_explicit: bool = True
    max_duration_s: float | None = None
    artist_limit: int | None = None
    timezone: str = "UTC"  # IANA name; the schedule's weekly windows are in it


@dataclass(frozen=True, slots=True)
class VenueRules:
    settings: VenueSettings
    marks: tuple[Mark, ...] = ()

    def values(self, kind: MarkKind) -> list[str]:
        return [m.value for m in self.marks if m.kind == kind]

    def to_json(self) -> Json:
        s = self.settings
        return {"allowExplicit": s.allow_explicit, "maxDurationS": s.max_duration_s, "artistLimit": s.artist_limit,
                "timezone": s.timezone, "marks": [m.to_json() for m in self.marks]}


@dataclass(frozen=True, slots=True)
class ScheduleSlot:
    """A weekly window (venue time) in which ``playlist_id`` plays: ``weekday`` 0 = Monday, minutes from
    midnight, ``end_minute`` after ``start_minute`` (a window past midnight is two slots)."""

    slot_id: str
    playlist_id: str
    weekday: int
    start_minute: int
    end_minute: int

    def to_json(self) -> Json:
        return {"slotId": self.slot_id, "playlistId": self.playlist_id, "weekday": self.weekday,
                "startMinute": self.start_minute, "endMinute": self.end_minute}


@dataclass(frozen=True, slots=True)
class VenueSchedule:
    """One venue's schedule as the switcher needs it: the slot it applied last, and its slots."""

    venue_id: str
    timezone: str
    applied_slot_id: str | None
    slots: tuple[ScheduleSlot, ...]
# --- payments (issue 11): per-venue price, requestable playlists, payments and their refunds -------

PaymentStatus = Literal["awaiting_payment", "paid"]
RefundStatus = Literal["refunded", "failed"]


class PaymentReused(StoreError):
    """The provider's payment is already recorded for another request: a payment is used once."""


@dataclass(frozen=True, slots=True)
class VenuePrice:
    price_minor: int  # in the currency's smallest unit (cents); 0 = requests are free
    currency: str  # ISO 4217, lower case as Stripe writes it

    def to_json(self) -> Json:
        return {"price": self.price_minor, "currency": self.currency}


@dataclass(frozen=True, slots=True)
class Payment:
    """What a patron pays for one request. Created before the provider is asked, so the request id exists
    from the start; the request itself (``requests``) is submitted only once the payment is verified."""

    request_id: str
    venue_id: str
    provider: str
    amount_minor: int
    currency: str
    song: Song
    requester_id: str | None
    client_address: str
    status: PaymentStatus
    created_at_ms: int
    checkout_ref: str | None = None  # the provider's checkout (a Stripe Checkout Session id)
    checkout_url: str | None = None
    payment_ref: str | None = None  # the provider's payment (a PaymentIntent id); unique: used once
    refund_status: RefundStatus | None = None
    refund_attempts: int = 0
    refund_next_at_ms: int | None = None
    refund_error: str | None = None
    refund_id: str | None = None

    def refund_json(self) -> Json:
        return {"requestId": self.request_id, "provider": self.provider, "amount": self.amount_minor,
                "currency": self.currency, "paymentRef": self.payment_ref,
                "refundStatus": self.refund_status or "due", "attempts": self.refund_attempts,
                "nextAttemptAt": self.refund_next_at_ms, "error": self.refund_error, "refundId": self.refund_id}


class PaymentStore(Protocol):
    async def get_venue_price(self, venue_id: str) -> VenuePrice | None:
        """The venue's price (free when never set); None for an unknown venue."""
        ...

    async def set_venue_price(self, venue_id: str, price: VenuePrice, now_ms: int) -> None: ...

    async def create_payment(self, payment: Payment) -> None: ...

    async def set_checkout(self, request_id: str, checkout_ref: str, checkout_url: str) -> None: ...

    async def get_payment(self, request_id: str) -> Payment | None: ...

    async def payment_by_checkout(self, checkout_ref: str) -> Payment | None: ...

    async def mark_payment_paid(self, request_id: str, payment_ref: str, now_ms: int) -> bool:
        """awaiting_payment -> paid with the provider's payment; False if it was paid already.
        PaymentReused when ``payment_ref`` belongs to another request."""
        ...

    async def refunds_due(self, now_ms: int, limit: int) -> list[Payment]:
        """Paid payments whose request is refund_due, not yet refunded, and due for an attempt."""
        ...

    async def record_refund(self, request_id: str, status: RefundStatus, refund_id: str | None, error: str | None,
                            next_at_ms: int | None, now_ms: int) -> None: ...

    async def payments_for(self, venue_id: str, request_ids: list[str]) -> dict[str, Payment]: ...

    async def refunds(self, venue_id: str, limit: int) -> list[Payment]:
        """The venue's paid payments whose request was refused, newest first."""
        ...

    async def get_request(self, request_id: str) -> RequestRecord | None: ...

    async def drop_unpaid(self, before_ms: int) -> int:
        """Forget checkouts created before ``before_ms`` that were never paid; returns how many."""
        ...

    async def unplayed_paid(self, queued_before_ms: int, limit: int) -> list[tuple[str, str]]:
        """(venue id, request id) of paid requests queued before ``queued_before_ms`` and still not played."""
        ...


# --- executions of the function endpoint (GET /v1/functions/{id}/executions/{executionId}) ---------


@dataclass(frozen=True, slots=True)
class StoredExecution:
    """An execution as its ``GET`` answers it, to the one who made it (``reader``), until ``expires_at_ms``."""

    execution_id: str
    function_id: str
    reader: str  # the identity that made it and alone may read it ("user:<id>", "device:<venue>/<device>")
    body: str  # the execution object as JSON, holding no credential
    created_at_ms: int
    expires_at_ms: int


class ExecutionStore(Protocol):
    async def keep_execution(self, execution: StoredExecution, keep_per_reader: int) -> None:
        """Store ``execution``; the reader's older ones beyond the newest ``keep_per_reader`` go."""
        ...

    async def get_execution(self, function_id: str, execution_id: str, reader: str, now_ms: int) -> str | None:
        """The stored body, if that execution exists, has not expired and ``reader`` made it."""
        ...


# --- the interface -------------------------------------------------------------------------------


class HubStore(PaymentStore, ExecutionStore, Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def change_event(self, venue_id: str) -> asyncio.Event:
        """An event set at the next committed change of ``venue_id``.

        Take the event *before* reading changes, then await it: nothing is missed."""
        ...

    def on_change(self, listener: Callable[[str | None], None]) -> None:
        """Call ``listener(venue_id)`` at each committed change of a venue announced to this process (by any
        instance), and ``listener(None)`` when announcements may have been lost (a listener reconnected)."""
        ...

    def on_rules_change(self, listener: Callable[[str | None], None]) -> None:
        """Call ``listener(venue_id)`` once a venue's request rules (settings, bans) or price changed, here or
        (PostgreSQL) on another instance; ``listener(None)`` when such news may have been lost."""
        ...

    def rate_limiter(self, scope: str, capacity: int, per_seconds: float) -> RateLimiter:
        """A per-key budget named ``scope``, shared by every hub process using this store."""
        ...

    def trouble(self) -> str | None:
        """Why the store cannot take writes right now (a full disk, an outage), or None; for readiness checks."""
        ...

    # venues and users
    async def create_venue(self, venue_id: str, name: str, now_ms: int, timezone: str = "UTC") -> bool: ...

    async def get_venue(self, venue_id: str) -> Venue | None: ...

    async def list_venues(self) -> list[Venue]: ...

    async def upsert_user(self, user: User, now_ms: int, *, only_staff_of: str | None = None) -> User:
        """Create the user, or change the role and venue of the one with this email (bumping its
        token_version when either changes, so its old tokens stop working); the stored record.
        ``only_staff_of`` (a venue's owner adding staff): an existing user is changed only while they are staff
        of that venue or of none, in the same statement; anyone else comes back as they are."""
        ...

    async def get_user(self, user_id: str) -> User | None: ...

    async def get_user_by_email(self, email: str) -> User | None: ...

    async def list_users(self, venue_id: str | None) -> list[User]:
        """Users of ``venue_id``; every user when None."""
        ...

    async def remove_user(self, user_id: str, *, only_staff_of: str | None = None) -> bool:
        """True when removed. ``only_staff_of``: only if they are staff (not an owner) of that venue."""
        ...

    async def bump_user_tokens(self, user_id: str, *, only_staff_of: str | None = None) -> int | None:
        """Sign-out everywhere: the user's new token_version, or None when there is no such user (with
        ``only_staff_of``: no such user who is staff, not an owner, of that venue)."""
        ...

    # device credentials, reports and pairing
    async def device_token_version(self, venue_id: str, device_id: str) -> int | None:
        """The version a device token must carry (0 for a box never re-issued); None when revoked."""
        ...

    async def reissue_device(self, venue_id: str, device_id: str, now_ms: int) -> int:
        """Bump the device's token_version and lift a revocation: the version of its new token."""
        ...

    async def revoke_device(self, venue_id: str, device_id: str, now_ms: int) -> bool:
        """Its tokens stop working and its master lease (if any) ends; False when the box was never known."""
        ...

    async def record_device_report(self, venue_id: str, device_id: str, report: DeviceReport, now_ms: int) -> None: ...

    async def list_devices(self, venue_id: str) -> list[DeviceRecord]: ...

    async def create_pairing(self, code_hash: str, secret_hash: str, device_id: str, expires_ms: int,
                             now_ms: int) -> bool:
        """False when ``code_hash`` is taken by a live pairing (draw another code)."""
        ...

    async def claim_pairing(self, code_hash: str, venue_id: str, claimed_by: str, now_ms: int) -> PairingState:
        """Staff entered the code: a pending, unexpired pairing becomes ``claimed`` for ``venue_id`` with a
        re-issued device version, atomically and once; anything else answers ``unknown``."""
        ...

    async def collect_pairing(self, secret_hash: str, now_ms: int) -> PairingState:
        """The box polls: ``claimed`` is answered once (then ``delivered``); ``pending`` until then."""
        ...

    # magic links
    async def create_magic_link(self, token_hash: str, email: str, redirect_url: str, expires_ms: int,
                                now_ms: int) -> None: ...

    async def consume_magic_link(self, token_hash: str, now_ms: int, *, auto_create: bool,
                                 new_user_id: str) -> User:
        """Mark the link used and find-or-create its user, atomically; InvalidMagicLink / UserNotFound."""
        ...

    # player registry
    async def register_player(self, venue_id: str, device_id: str, user_agent: str, now_ms: int,
                              timings: RegistryTimings, instance_id: str | None = None,
                              name_unnamed_lease: bool = True) -> RegistryAnswer:
        """The reference's election (``rules.decide_register``); ``instance_id`` names the asking process.

        Granted, the lease takes that name, except that with ``name_unnamed_lease`` False (a name the hub made
        for a client that may never echo it) a lease naming no process stays unnamed (a heartbeat names it)."""
        ...

    async def heartbeat(self, venue_id: str, device_id: str, now_ms: int,
                        timings: RegistryTimings, position: PlayPosition | None = None,
                        instance_id: str | None = None) -> RegistryAnswer:
        """Extend the lease; ``position`` (the master's player) is kept on its registry row, same statement.

        A beat from another process than the holder's (``instance_id``) is refused: conflict, second_process."""
        ...

    async def release_player(self, venue_id: str, device_id: str, now_ms: int, timings: RegistryTimings,
                             instance_id: str | None = None) -> RegistryAnswer:
        """The device ends its lease (graceful stop): ``released``, or ``not_found`` if it holds none. Another
        process than the holding one is refused while the holder beats (``rules.decide_release``): conflict,
        second_process, the lease untouched."""

    async def write_liveness(self, beats: Sequence[Liveness], timings: RegistryTimings) -> list[bool]:
        """Each beat's liveness, in one transaction, to its device's row if still active at its epoch, unexpired
        at ``beat_ms`` and not held by another process (never moving a time or position backwards), and its
        report; per beat whether the row matched. Not durable, like a heartbeat."""
        ...

    async def current_master(self, venue_id: str) -> MasterInfo | None: ...

    # paid requests
    async def submit_paid_request(self, request: PaidRequest, rules: RequestRules, now_ms: int) -> RequestOutcome: ...

    async def list_requests(self, venue_id: str, status: RequestStatus | None, limit: int) -> list[RequestRecord]: ...

    async def refuse_request(self, venue_id: str, request_id: str, reason: str, now_ms: int, *,
                             fence: MasterWrite | None = None) -> Refusal:
        """A paid request refused after it was accepted: ``pending`` -> ``refund_due`` with ``reason``, its
        queue entry removed (an ``entry_removed`` change, so edges drop it), in one transaction.

        Exactly once: a second call, or a request no longer pending (played, already refunded), changes
        nothing and answers ``changed=False`` with the request as it is. An entry already playing stays
        playing (skipping it is the player's business). ``fence``: refused only while that device holds
        that epoch (StaleEpoch otherwise), as for other master writes. UnknownRequest when
        ``request_id`` is not a request of ``venue_id``."""
        ...

    # playlists and catalog
    async def create_playlist(self, venue_id: str, name: str, now_ms: int) -> Playlist: ...

    async def get_playlist(self, playlist_id: str) -> Playlist | None: ...

    async def list_playlists(self, venue_id: str) -> list[Playlist]: ...

    async def add_track(self, playlist_id: str, song: Song, now_ms: int) -> Playlist: ...

    async def activate_playlist(self, venue_id: str, playlist_id: str, now_ms: int) -> int: ...

    async def report_analysis(self, analysis: Analysis, now_ms: int) -> CatalogTrack:
        """Keep a box's analysis for its venue; share it when another venue's agrees and both are plausible
        (``rules.shared_by_agreement``); an admin's is shared at once and its duration trusted."""
        ...

    async def known_durations(self, video_id: str) -> list[KnownDuration]:
        """The lengths of ``video_id`` the hub trusts more than a box's (``rows.KNOWN_DURATIONS``)."""
        ...

    async def set_override(self, video_id: str, override: Offsets | None, by: str, now_ms: int) -> CatalogTrack: ...

    async def set_venue_override(self, venue_id: str, video_id: str, override: Offsets | None, by: str,
                                 now_ms: int) -> CatalogTrack:
        """The venue's own cue points for ``video_id`` (None clears them); the track as that venue sees it."""
        ...

    async def get_catalog(self, video_ids: list[str], venue_id: str | None = None) -> dict[str, CatalogTrack]:
        """Known tracks among ``video_ids``, as ``venue_id`` sees them (with its overrides), or as everyone does."""
        ...

    # queue and feed
    async def queue_snapshot(self, venue_id: str) -> QueueSnapshot: ...

    async def changes_since(self, venue_id: str, version: int, limit: int) -> ChangeBatch: ...

    async def advance_queue(self, write: MasterWrite, finished_entry_id: str | None, now_ms: int) -> WriteResult: ...

    async def set_now_playing(self, write: MasterWrite, entry_id: str | None, song: Song | None,
                              now_ms: int) -> WriteResult:
        """Fenced like advance_queue; the paid request that was playing before becomes ``played``."""
        ...

    async def report_played(self, write: MasterWrite, report: PlayReport, now_ms: int) -> WriteResult:
        """Append to the venue's play history; any epoch this device really held is accepted.

        The request is ``report.request_id``, else the one of the named entry (now playing or queued)."""
        ...

    async def play_history(self, venue_id: str, limit: int) -> list[Json]: ...

    # device errors
    async def report_device_error(self, report: DeviceError, now_ms: int) -> WriteResult:
        """Store ``report`` once per (venue, device, key); a resend answers the first body, ``replayed``."""
        ...

    async def device_errors(self, venue_id: str, limit: int) -> list[Json]:
        """The venue's reports, newest (by receipt) first."""
        ...

    async def housekeeping(self, now_ms: int) -> int:
        """Drop expired links and executions, old idempotency keys, old leases and old device errors; returns rows
        removed."""
        ...

    # --- the staff console (issue 12) -------------------------------------------------------------

    async def remove_entry(self, venue_id: str, entry_id: str, now_ms: int) -> QueueEntry:
        """Take an unpaid entry out of the queue (``entry_removed``). UnknownEntry if it is not queued;
        Conflict for a paid entry (that goes through ``refuse_request``, so it is refunded)."""
        ...

    async def move_entry(self, venue_id: str, entry_id: str, position: int, now_ms: int) -> QueueSnapshot:
        """Move a main-queue entry to ``position`` (1-based, clamped); one ``main_replaced`` change."""
        ...

    async def skip_now(self, venue_id: str, now_ms: int) -> Json:
        """Tell the venue's boxes to skip what is playing (a ``skip`` change naming its entry); the change."""
        ...

    async def queue_next(self, venue_id: str, song: Song, by: str, now_ms: int) -> QueueEntry:
        """A free staff pick at the head of the priority queue (``entry_added`` with ``at: head``)."""
        ...

    async def update_playlist(self, venue_id: str, playlist_id: str, name: str | None,
                              requestable: bool | None) -> Playlist: ...

    async def delete_playlist(self, venue_id: str, playlist_id: str) -> None:
        """Delete a playlist with its tracks and schedule slots; Conflict while it is the active one."""
        ...

    async def remove_track(self, venue_id: str, playlist_id: str, position: int, video_id: str,
                           now_ms: int) -> Playlist:
        """Remove the track at ``position`` (1-based), which must be ``video_id`` (Conflict otherwise: the list
        changed meanwhile). From the active playlist, one queued main entry of it goes too."""
        ...

    async def move_track(self, venue_id: str, playlist_id: str, position: int, video_id: str,
                         to_position: int) -> Playlist: ...

    async def known_songs(self, video_ids: list[str], venue_id: str | None = None) -> dict[str, Song]:
        """Title, artist and duration of songs the hub has seen, for adding by id at ``venue_id``: as staff
        typed them on any playlist, as patrons' requests at that venue named them (at any venue when None), and
        as that venue's own box described them (``describe_song``); never a pending song (``rows.KNOWN_SONG``)."""
        ...

    async def set_track_details(self, venue_id: str, playlist_id: str, position: int, video_id: str, song: Song,
                                now_ms: int) -> Playlist:
        """Staff type the details of the track at ``position`` (which must still be ``video_id``: Conflict
        otherwise): they replace what was there (pending, or a box's) and count as staff's (``details_by`` NULL).
        On the active playlist, its queued main entries showing the old details change too (``main_replaced``)."""
        ...

    async def pending_songs(self, venue_id: str, limit: int) -> list[str]:
        """Video ids of the venue's playlist tracks whose details are pending, each once."""
        ...

    async def describe_song(self, venue_id: str, song: Song, now_ms: int) -> int:
        """The venue's box described ``song`` (``details_by`` its device): fill it in wherever it is pending at
        that venue (its playlists, its queue, now playing), in one transaction, with a ``main_replaced`` change
        when queued entries changed. Details staff typed, and other venues' songs, are never touched. Returns
        the number of playlist tracks and queue entries filled (0: nothing was pending)."""
        ...

    async def venue_rules(self, venue_id: str) -> VenueRules: ...

    async def set_venue_settings(self, venue_id: str, settings: VenueSettings, now_ms: int) -> VenueRules:
        """Replace the venue's settings; a ``rules`` change carries the result to the edges."""
        ...

    async def add_mark(self, venue_id: str, kind: MarkKind, value: str, now_ms: int) -> VenueRules:
        """Ban a video or an artist, or flag a video explicit (again: no change); a ``rules`` change."""
        ...

    async def remove_mark(self, venue_id: str, mark_id: str, now_ms: int) -> VenueRules: ...

    async def add_schedule_slot(self, venue_id: str, slot: ScheduleSlot, now_ms: int) -> ScheduleSlot: ...

    async def delete_schedule_slot(self, venue_id: str, slot_id: str) -> None: ...

    async def schedules(self, venue_id: str | None = None) -> list[VenueSchedule]:
        """Every venue with schedule slots (or just ``venue_id``, even without any)."""
        ...

    async def apply_schedule(self, venue_id: str, expected_slot_id: str | None, slot: ScheduleSlot | None,
                             now_ms: int) -> bool:
        """Record that ``slot`` (None: no window) now applies, if ``expected_slot_id`` still is the one applied
        last (another hub instance may have been first), and activate its playlist unless active. True if
        this call applied it."""
        ...
