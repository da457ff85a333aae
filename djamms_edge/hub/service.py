"""What the hub does, independent of which API surface asked.

The REST API and the reference-compatible function endpoint both call these
methods, so auth checks, rate limits and rules are enforced in one place.
Replies carry the reference's body (``body``) and REST-only extras (``extra``).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import secrets
import smtplib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from djamms_edge.hub.accounts import SIGN_IN_PATH
from djamms_edge.hub.auth import (
    Principal,
    TokenVerifier,
    hash_link_secret,
    issue_user_token,
    new_link_secret,
    require,
    require_player,
    require_staff,
    require_venue_member,
)
from djamms_edge.hub.config import HubConfig
from djamms_edge.hub.errors import ApiError
from djamms_edge.hub.leases import LeaseTable
from djamms_edge.hub.mailer import Mailer
from djamms_edge.hub.payments.flow import PaymentFlow, provider_from_config
from djamms_edge.hub.rules import (
    estimate_start_times,
    measured_refusal,
    plausible_analysis,
    play_seconds,
    song_refusal,
)
from djamms_edge.hub.store.base import (
    Analysis,
    DeviceError,
    DeviceReport,
    HubStore,
    InvalidMagicLink,
    Json,
    MasterWrite,
    Offsets,
    PaidRequest,
    PlayPosition,
    PlayReport,
    QueueEntry,
    Refusal,
    RegistryAnswer,
    RegistryTimings,
    RequestRules,
    RequestStatus,
    Song,
    StaleEpoch,
    StoreError,
    UnknownEntry,
    UnknownPlaylist,
    UnknownRequest,
    UnknownVenue,
    User,
    UserNotFound,
    Venue,
    WriteResult,
)
from djamms_edge.hub.venue_cache import VenueCache
from djamms_edge.shared.addresses import AddressPolicy, url_refusal
from djamms_edge.shared.ids import is_media_url

log = logging.getLogger(__name__)

Clock = Callable[[], float]  # seconds since the epoch
LINK_SECRET = re.compile(r"^[0-9a-f]{64}$")
URL_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")  # RFC 3986's, nothing else
MAGIC_LINK_SENT = "Magic link sent to your email"
HUB_NAMED = "hub-"  # how instance ids the hub gives processes that name none begin
PRIVATE_ENTRY_FIELDS = frozenset({"requestId", "requesterId", "paidCredit"})


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Json
    extra: Json = field(default_factory=dict)
    credential: bool = False  # the body hands out a credential: never stored, never shown again

    def rest_body(self) -> Json:
        return {**self.body, **self.extra}


def api_error_for(exc: StoreError) -> ApiError:
    """A store's refusal as the client sees it."""
    if isinstance(exc, StaleEpoch):
        return ApiError(409, "stale_epoch", "epoch",
                        {"message": str(exc), "currentEpoch": exc.current_epoch, "currentMaster": exc.holder})
    status, fieldname = {
        UnknownVenue: (404, "venueId"),
        UnknownPlaylist: (404, "playlistId"),
        UnknownEntry: (404, "entryId"),
        UnknownRequest: (404, "requestId"),
        InvalidMagicLink: (401, "secret"),
        UserNotFound: (403, "secret"),
    }.get(type(exc), (409, None))
    return ApiError(status, str(exc), fieldname)


class HubService:
    def __init__(self, config: HubConfig, store: HubStore, mailer: Mailer, clock: Clock = time.time) -> None:
        self.config = config
        self.store = store
        self.mailer = mailer
        self.clock = clock
        self.tokens = TokenVerifier(config.jwt_secret)
        self.timings = RegistryTimings(round(config.registry.stale_after_s * 1000),
                                       round(config.registry.expire_after_s * 1000),
                                       round(config.registry.instance_grace_s * 1000))
        req = config.requests
        self._media_hosts = AddressPolicy.allowing(req.allowed_hosts)
        self.rules = RequestRules(req.max_duration_s, req.artist_limit, round(req.artist_window_s * 1000))
        lim = config.limits
        # From the store, so several hub instances on one PostgreSQL database share each budget.
        self._links_per_email = store.rate_limiter("links_per_email", lim.magic_links_per_email,
                                                   lim.magic_link_window_s)
        self._links_per_address = store.rate_limiter("links_per_address", lim.magic_links_per_address,
                                                     lim.magic_link_window_s)
        self._requests_per_client = store.rate_limiter("requests_per_client", lim.requests_per_client,
                                                       lim.requests_window_s)
        self._errors_per_device = store.rate_limiter("device_errors_per_device", lim.device_errors_per_device,
                                                     lim.device_errors_window_s)
        self._requests_per_patron = store.rate_limiter("requests_per_patron", lim.requests_per_patron,
                                                       lim.patron_window_s)
        self.payments = PaymentFlow(config.payments, store, self.rules_for, self.now_ms,
                                    provider_from_config(config.payments))
        self.leases = LeaseTable(store, self.timings, self.now_ms)
        self.venue_rules = VenueCache(store, store.venue_rules)
        self.venue_prices = VenueCache(store, store.get_venue_price)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # --- magic link ------------------------------------------------------------------------------

    def _redirect_allowed(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                return False
        except ValueError:  # e.g. an unclosed IPv6 bracket
            return False
        prefixes = (self.config.public_url.rstrip("/") + "/", *self.config.auth.redirect_prefixes)
        return any(url.startswith(p) for p in prefixes)

    async def create_magic_link(self, email: str, redirect_url: str, client: str) -> Reply:
        if not URL_CHARACTERS.fullmatch(redirect_url):
            # It is pasted into the mail: spaces or line breaks would put free text in our name.
            raise ApiError(400, "must be a URL of URL characters only (no spaces or control characters; "
                           "percent-encode the rest)", "redirectUrl")
        if not self._redirect_allowed(redirect_url):
            raise ApiError(400, "must start with the hub's public_url or a configured redirect prefix", "redirectUrl")
        now = self.clock()
        # The client's own budget first, and the email's counted per client: a request refused for its
        # sender's limit spends nothing of the email's, and nobody's requests lock another person out.
        if not await self._links_per_address.take(client, now):
            raise ApiError(429, "Too many magic links from this address; try again later", "client")
        if not await self._links_per_email.take(f"{email} {client}", now):
            raise ApiError(429, "Too many magic links for this email; try again later", "email")
        secret, token_hash = new_link_secret()
        ttl_ms = self.config.auth.magic_link_ttl_s * 1000
        await self.store.create_magic_link(token_hash, email, redirect_url, self.now_ms() + ttl_ms, self.now_ms())
        link = _with_query(redirect_url, secret=secret, userId=email)
        minutes = self.config.auth.magic_link_ttl_s // 60
        text = f"Sign in to DJAMMS:\n\n{link}\n\nThe link works once, for {minutes} minutes.\n"
        try:
            await self.mailer.send(email, "Sign in to DJAMMS", text)
        except (OSError, smtplib.SMTPException) as exc:
            log.error("could not mail a magic link to %s: %s", email, exc)
            raise ApiError(503, "Could not send the magic link; try again later", "email") from None
        return Reply(200, {"success": True, "message": MAGIC_LINK_SENT})

    async def mail_invitation(self, user: User, venue: Venue, by: str) -> bool:
        """Tell someone just added to a venue's team (``by``: who added them) where to sign in. No link secret in
        it: a sign-in link works minutes, this mail may be read tomorrow. False when it did not reach them: this
        person was mailed about this venue ``magic_links_per_email`` times within the magic-link window already
        (adding and removing someone over and over cannot flood them), the venue's team was mailed
        ``magic_links_per_address`` times, SMTP failed (logged), or the hub has no SMTP (the mail is in its log
        only). The addition stands either way."""
        # The magic links' budgets, for these mails: per person and venue, and per venue (an owner's account in the
        # wrong hands cannot make the hub mail the world).
        now = self.clock()
        if not await self._links_per_address.take(f"team:{venue.venue_id}", now) \
                or not await self._links_per_email.take(f"{user.email} team:{venue.venue_id}", now):
            return False
        role = "an owner (you add and remove its staff too)" if user.role == "owner" else "staff"
        sign_in = self.config.public_url.rstrip("/") + SIGN_IN_PATH
        text = (f"{by} added you to the team of {venue.name} on DJAMMS, as {role}.\n\n"
                f"Sign in at {sign_in} with this address, {user.email}: a sign-in link comes by mail, no password "
                "to remember.\n")
        try:
            await self.mailer.send(user.email, "You are on a venue's team on DJAMMS", text)
        except (OSError, smtplib.SMTPException) as exc:
            log.error("could not mail %s that they were added to venue %s: %s", user.email, venue.venue_id, exc)
            return False
        return self.mailer.delivers  # without SMTP it is in the hub's log only: whoever added them tells them

    async def verify_magic_link(self, secret: str) -> Reply:
        if not LINK_SECRET.fullmatch(secret):
            raise ApiError(401, "Invalid or expired magic link", "secret")
        user = await self.store.consume_magic_link(
            hash_link_secret(secret), self.now_ms(), auto_create=self.config.auth.auto_create_users,
            new_user_id="user-" + uuid.uuid4().hex,
        )
        ttl = self.config.auth.token_ttl_days * 86400
        token = issue_user_token(self.config.jwt_secret, user, self.clock(), ttl)
        log.info("user %s (%s) signed in", user.user_id, user.role)
        return Reply(200, {"token": token, "user": user.to_json()}, credential=True)

    # --- player registry -------------------------------------------------------------------------

    async def register(self, who: Principal | None, venue_id: str, device_id: str, user_agent: str,
                       instance_id: str | None = None) -> Reply:
        """The reference's register; the answer also names the asking process (``instanceId``) for it to echo.

        A process that names none (a browser player, an older edge) is named here and checked like any other
        against the holder's process. Its lease stays unnamed until it echoes the name in a heartbeat (a client
        that never does, an older one, keeps working unchecked), unless ``require_instance_id``."""
        require_player(who, venue_id, device_id)
        named_here = instance_id is None
        asking = instance_id or HUB_NAMED + secrets.token_hex(8)
        await self._registry_barrier(venue_id)
        answer = await self.store.register_player(
            venue_id, device_id, user_agent, self.now_ms(), self.timings, asking,
            name_unnamed_lease=not named_here or self.config.registry.require_instance_id)
        self.leases.invalidate(venue_id)
        if answer.status == "registered":
            log.info("venue %s: device %s is master (epoch %d)", venue_id, device_id, answer.epoch)
        await self._second_process(answer, venue_id, device_id, asking)
        return Reply(200, {**answer.to_json(), "instanceId": asking}, self._player_rules())

    def _named(self, instance_id: str | None) -> None:
        """With ``hub.registry.require_instance_id``, a heartbeat or release must name its process."""
        if instance_id is None and self.config.registry.require_instance_id:
            raise ApiError(400, "required: send the instanceId your register answer named "
                           "(hub.registry.require_instance_id)", "instanceId")

    async def heartbeat(self, who: Principal | None, venue_id: str, device_id: str,
                        position: PlayPosition | None = None, instance_id: str | None = None,
                        report: DeviceReport | None = None) -> Reply:
        """From the lease table when it may answer (hub/leases.py: what the beat says is written behind);
        else from the store, with the box's ``report`` recorded at once."""
        require_player(who, venue_id, device_id)
        self._named(instance_id)
        now_ms = self.now_ms()
        answer = self.leases.answer(venue_id, device_id, instance_id, position, report, now_ms)
        if answer is None:
            answer = await self.leases.beat_through_store(venue_id, device_id, now_ms, position, instance_id)
            await self._second_process(answer, venue_id, device_id, instance_id)
            if report is not None:  # after the registry answered, so who may act for this player was checked
                await self.store.record_device_report(venue_id, device_id, report, now_ms)
        return Reply(200, answer.to_json(), self._player_rules())

    async def _registry_barrier(self, venue_id: str) -> None:
        """Before a registry decision here: what beats answered from memory said is in the store, and the
        venue's leases answer no beat until the store has answered one again."""
        self.leases.invalidate(venue_id)
        await self.leases.flush_quietly(venue_id)

    async def liveness(self, venue_id: str) -> None:
        """Before reading what beats wrote (a master's last beat and position, boxes' reports): flush them."""
        await self.leases.flush_quietly(venue_id)

    async def plays_now(self, venue_id: str) -> bool:
        """A box holds the venue's lease and beats: a request queued now reaches something that plays it."""
        await self.liveness(venue_id)
        master = await self.store.current_master(venue_id)
        return master is not None and self.now_ms() - master.last_heartbeat_ms < self.timings.stale_ms

    async def _second_process(self, answer: RegistryAnswer, venue_id: str, device_id: str,
                              instance_id: str | None) -> None:
        """A refused second process is shown to staff as a device error, once per process."""
        if not answer.second_process or instance_id is None:
            return
        now_ms = self.now_ms()
        if instance_id.startswith(HUB_NAMED):  # named afresh at each register: one error an hour, not one a try
            key = f"second-process:unnamed:{now_ms // 3_600_000}"
            who = "a process that names no instance (a browser player or an older edge)"
        else:
            key, who = f"second-process:{instance_id}", f"a second process (instance {instance_id})"
        message = (f"{who} used this device's token while the box held the lease; it was refused. A copied token? "
                   "Revoke and re-issue the device token.")
        result = await self.store.report_device_error(DeviceError(venue_id, device_id, key, message, None, now_ms),
                                                      now_ms)
        if not result.replayed:
            log.warning("venue %s: refused a second process (instance %s) of device %s", venue_id, instance_id,
                        device_id)

    def _player_rules(self) -> Json:
        """What a box enforces itself (REST only): a paid request measured longer than this is not played.

        The hub's configured limit (no store read on the heartbeat path); a venue's own limit reaches its
        boxes in the feed's rules (``maxDurationS``) and wins there."""
        return {"maxRequestDuration": self.rules.max_duration_s}

    async def release(self, who: Principal | None, venue_id: str, device_id: str,
                      instance_id: str | None = None) -> Reply:
        require_player(who, venue_id, device_id)
        self._named(instance_id)
        await self._registry_barrier(venue_id)
        answer = await self.store.release_player(venue_id, device_id, self.now_ms(), self.timings, instance_id)
        self.leases.invalidate(venue_id)
        if answer.status == "released":
            log.info("venue %s: device %s released the master lease (epoch %d)", venue_id, device_id, answer.epoch)
        await self._second_process(answer, venue_id, device_id, instance_id)
        return Reply(200, answer.to_json())

    # --- device errors ---------------------------------------------------------------------------

    async def report_device_error(self, report: DeviceError, now_ms: int) -> WriteResult:
        if not await self._errors_per_device.take(f"{report.venue_id}/{report.device_id}", self.clock()):
            raise ApiError(429, "Too many error reports from this device; try again later", "deviceId")
        return await self.store.report_device_error(report, now_ms)

    # --- paid requests ---------------------------------------------------------------------------

    async def take_request_budget(self, client: str, patron_id: str | None) -> None:
        """The per-client limit, and on top of it the per-patron one (a patron is a browser-held id plus
        the client address: one phone of many behind a bar's one address)."""
        now = self.clock()
        if not await self._requests_per_client.take(client, now):
            raise ApiError(429, "Too many requests from this client; try again later", "client")
        if patron_id is not None and not await self._requests_per_patron.take(f"{client}|{patron_id}", now):
            raise ApiError(429, "You have made the most requests allowed for now; try again later", "requesterId")

    async def paid_request(self, venue_id: str, song: Song, payment_id: str, requester_id: str | None,
                           client: str) -> Reply:
        """A request naming its payment. At a venue with a price the payment is checked with the provider
        (paid, in full, at this venue, used once); at a free venue the id only makes retries idempotent."""
        await self.take_request_budget(client, requester_id)
        await self.check_media_url(song)
        price = await self.venue_prices.get(venue_id)
        if price is None:
            raise UnknownVenue(f"unknown venue {venue_id!r}")
        if price.price_minor > 0:
            outcome = await self.payments.verified_request(venue_id, payment_id, song, requester_id, client, price)
        else:
            outcome = await self.payments.submit(PaidRequest(venue_id, song, payment_id, requester_id, client))
        extra = {"requestId": outcome.request_id, "status": outcome.status, "replayed": outcome.replayed}
        if outcome.accepted:
            return Reply(200 if outcome.replayed else 201, {"success": True}, extra)
        return Reply(422, {"success": False, "error": outcome.error}, extra)

    async def rules_for(self, venue_id: str, song: Song) -> RequestRules:
        """The request rules at ``venue_id`` for ``song``: its own limits where staff set them, and a refusal
        for a song it bans (by video, by artist, or explicit while explicit songs are off)."""
        venue = await self.venue_rules.get(venue_id)
        assert venue is not None  # a store's venue_rules answers every venue id (an unknown one: no rules)
        limits = venue.settings
        return dataclasses.replace(
            self.rules,
            max_duration_s=limits.max_duration_s if limits.max_duration_s is not None else self.rules.max_duration_s,
            artist_limit=limits.artist_limit if limits.artist_limit is not None else self.rules.artist_limit,
            refusal=song_refusal(song, venue),
        )

    async def list_requests(self, who: Principal | None, venue_id: str, status: str | None, limit: int) -> Json:
        require_staff(who, venue_id)
        wanted: RequestStatus | None
        match status:
            case None | "pending" | "played" | "refund_due" as wanted:
                pass
            case _:
                raise ApiError(400, "must be pending, played or refund_due", "status")
        records = await self.store.list_requests(venue_id, wanted, limit)
        return {"requests": [r.to_json() for r in records]}

    async def refuse_request(self, venue_id: str, request_id: str, reason: str, *,
                             fence: MasterWrite | None = None) -> Refusal:
        """THE transition of an accepted paid request that will not play: pending -> refund_due with ``reason``,
        its queue entry removed (edges drop it from the feed), exactly once (see HubStore.refuse_request).

        No permission check here: callers check who asks (staff removing a paid entry, the refund worker,
        report_over_limit for a device)."""
        refusal = await self.store.refuse_request(venue_id, request_id, reason, self.now_ms(), fence=fence)
        if refusal.changed:
            log.info("venue %s: paid request %s refused after acceptance (refund due): %s", venue_id, request_id,
                     reason)
        return refusal

    async def report_over_limit(self, who: Principal | None, write: MasterWrite, request_id: str,
                                measured_s: float) -> Refusal:
        """The venue's master measured a paid request's fetched track (trimmed) over the limit: refund it.

        The hub applies its own limit to the measured length; the declared duration is never trusted."""
        require_player(who, write.venue_id, write.device_id)
        own = (await self.store.venue_rules(write.venue_id)).settings.max_duration_s
        limit = self.rules.max_duration_s if own is None else own
        reason = measured_refusal(measured_s, limit)
        if reason is None:
            raise ApiError(422, f"{measured_s:g} seconds is within the limit of {limit:g}", "duration")
        return await self.refuse_request(write.venue_id, request_id, reason, fence=write)

    async def check_media_url(self, song: Song, field: str = "song.videoId") -> None:
        """A song by URL naming an internal address (loopback, LAN, link-local, by IP or by what its name
        resolves to) is refused unless its host is allowed: the boxes would fetch it from inside the venue."""
        if is_media_url(song.video_id):
            refusal = await url_refusal(song.video_id, self._media_hosts)
            if refusal is not None:
                raise ApiError(400, refusal, field)

    # --- playlists and catalog -------------------------------------------------------------------

    async def add_song(self, who: Principal | None, playlist_id: str, song: Song) -> Reply:
        playlist = await self.store.get_playlist(playlist_id)
        if playlist is None:
            raise ApiError(404, f"unknown playlist {playlist_id!r}", "playlistId")
        require_staff(who, playlist.venue_id)
        await self.check_media_url(song)
        if song.pending:  # by URL alone: what the hub knows of it for this venue, else its box describes it later
            song = (await self.store.known_songs([song.video_id], playlist.venue_id)).get(song.video_id, song)
        updated = await self.store.add_track(playlist_id, song, self.now_ms())
        known = (await self.store.get_catalog([song.video_id], playlist.venue_id)).get(song.video_id)
        end = known.effective.end if known is not None else None
        # The reference answered with the detected end, falling back to the full duration.
        real_end = end if end is not None or song.pending else song.duration
        return Reply(201, {"success": True, "realEndOffset": real_end},
                     {"playlist": updated.to_json(), "position": len(updated.tracks), "song": song.to_json()})

    async def describe_song(self, who: Principal | None, venue_id: str, song: Song) -> Json:
        """The venue's box says what a song it fetched is (``song``: cleaned, bounded; ``details_by`` unset): it
        fills the songs staff added at that venue by URL alone. Only a device, for its own venue: one venue's
        box never changes what another venue sees, and details staff typed always win (the store fills only
        pending songs)."""
        principal = require_venue_member(who, venue_id)
        if principal.role != "device" or principal.device_id is None:
            raise ApiError(403, "only the venue's boxes describe songs; staff type details when they add a song",
                           "Authorization")
        filled = await self.store.describe_song(venue_id, dataclasses.replace(song, details_by=principal.device_id),
                                                self.now_ms())
        if filled:
            log.info("venue %s: device %s described %s (%d songs filled)", venue_id, principal.device_id,
                     song.video_id, filled)
        return {"videoId": song.video_id, "filled": filled}

    async def report_analysis(self, who: Principal | None, analysis: Analysis) -> Json:
        principal = require(who)
        if principal.role not in ("device", "admin"):
            raise ApiError(403, "only devices report analysis; staff set an override", "Authorization")
        track = await self.store.report_analysis(analysis, self.now_ms())
        if analysis.venue_id is not None:
            await self._implausible(analysis)
        return track.to_json()

    async def _implausible(self, analysis: Analysis) -> None:
        """A box's analysis far from a length the hub trusts stays with its venue (the store's decision); staff
        hear of it once per video and box: their box plays that cut of it, from a broken or different download?"""
        venue_id = analysis.venue_id
        known = await self.store.known_durations(analysis.video_id)
        far = next((k for k in known if not plausible_analysis(analysis, [k])), None)
        if venue_id is None or far is None:
            return
        kept = play_seconds(analysis.duration or far.seconds,
                            Offsets(analysis.real_start_offset, analysis.real_end_offset))
        measured = "" if analysis.duration is None else f"{analysis.duration:g} s long, "
        message = (f"this box measured {analysis.video_id} as {measured}{kept:g} s between its cue points, but the "
                   f"hub knows it as {far.seconds:g} s: kept for this venue only. A broken or different download?")
        now_ms = self.now_ms()
        result = await self.store.report_device_error(
            DeviceError(venue_id, analysis.device_id, f"implausible:{analysis.video_id}", message, analysis.video_id,
                        now_ms), now_ms)
        if not result.replayed:
            log.warning("venue %s: device %s's analysis of %s is far from its known length (%g s); not shared",
                        venue_id, analysis.device_id, analysis.video_id, far.seconds)

    async def set_override(self, who: Principal | None, video_id: str, offsets: Offsets | None,
                           venue_id: str | None) -> Json:
        """A venue's override (its staff, or an admin naming the venue) or, from an admin naming no venue,
        the global one every venue sees. Staff never write what other venues play."""
        principal = require(who)
        if venue_id is None and principal.is_staff:
            venue_id = principal.venue_id
            if venue_id is None:
                raise ApiError(403, "a staff token without a venue cannot set overrides", "Authorization")
        if venue_id is None:
            if principal.role != "admin":
                raise ApiError(403, "staff or admin token required", "Authorization")
            track = await self.store.set_override(video_id, offsets, principal.label, self.now_ms())
        else:
            require_staff(principal, venue_id)
            track = await self.store.set_venue_override(venue_id, video_id, offsets, principal.label, self.now_ms())
        return track.to_json()

    # --- queue -----------------------------------------------------------------------------------

    async def public_queue(self, venue_id: str, limit: int, mine: str | None = None) -> Json:
        """What a phone may see: no requester or request ids, each entry with its estimated start.
        The entry of request ``mine`` (an id the patron holds already) is marked ``"mine": true``."""
        await self.liveness(venue_id)
        snap = await self.store.queue_snapshot(venue_id)
        entries = [*snap.priority, *snap.main][:limit]
        playing = snap.now_playing
        ids = [e.song.video_id for e in entries] + ([playing.entry.song.video_id] if playing else [])
        catalog = await self.store.get_catalog(ids, venue_id)

        def seconds(entry: QueueEntry) -> float:
            # Once a box has measured the track, its length and cue points count, not what the client declared.
            track = catalog.get(entry.song.video_id)
            if track is None:
                return play_seconds(entry.song.duration, None)
            return play_seconds(track.duration or entry.song.duration, track.effective)

        ends = None if playing is None else playing.started_at_ms + round(seconds(playing.entry) * 1000)
        durations = [seconds(e) for e in entries]
        starts = estimate_start_times(self.now_ms(), ends, durations)
        now_playing = None if playing is None else {
            **_public_entry(playing.entry, seconds(playing.entry), mine), "startedAt": playing.started_at_ms,
            "estimatedEndAt": ends,
        }
        return {
            "venueId": venue_id,
            "version": snap.version,
            "nowPlaying": now_playing,
            "queue": [
                {"position": i + 1, **_public_entry(e, d, mine), "estimatedStartAt": s}
                for i, (e, d, s) in enumerate(zip(entries, durations, starts, strict=True))
            ],
        }

    async def advance(self, who: Principal | None, write: MasterWrite, finished_entry_id: str | None) -> WriteResult:
        require_player(who, write.venue_id, write.device_id)
        await self.liveness(write.venue_id)
        return await self.store.advance_queue(write, finished_entry_id, self.now_ms())

    async def now_playing(self, who: Principal | None, write: MasterWrite, entry_id: str | None,
                          song: Song | None) -> WriteResult:
        require_player(who, write.venue_id, write.device_id)
        await self.liveness(write.venue_id)
        return await self.store.set_now_playing(write, entry_id, song, self.now_ms())

    async def played(self, who: Principal | None, write: MasterWrite, report: PlayReport) -> WriteResult:
        require_player(who, write.venue_id, write.device_id)
        await self.liveness(write.venue_id)
        return await self.store.report_played(write, report, self.now_ms())


def _public_entry(entry: QueueEntry, play_s: float, mine: str | None = None) -> Json:
    """An entry as a phone may see it: who asked (and what they paid) stays with staff and devices."""
    data = {k: v for k, v in entry.to_json().items() if k not in PRIVATE_ENTRY_FIELDS}
    if mine is not None and entry.request_id == mine:
        data["mine"] = True
    return {**data, "playDuration": round(play_s, 3)}


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))
