"""The hub's config section (``[hub]`` in the TOML file)."""

from __future__ import annotations

from dataclasses import dataclass, field

from djamms_edge.shared.config_schema import at_least, between, secret, setting

MIN_JWT_SECRET_BYTES = 32


def _jwt_secret_check(value: str) -> str | None:
    # An empty secret is allowed at load time so the edge can share a config file;
    # the hub itself refuses to start without one (see HubConfig.startup_problems).
    if value and len(value.encode()) < MIN_JWT_SECRET_BYTES:
        return f"must be at least {MIN_JWT_SECRET_BYTES} bytes"
    return None


@dataclass(frozen=True)
class StoreConfig:
    url: str = setting(
        "sqlite:///var/lib/djamms/hub.db",
        doc="sqlite:///ABSOLUTE/PATH or sqlite:RELATIVE/PATH; postgresql://… for several hub instances",
        env="DJAMMS_STORE_URL",
    )


@dataclass(frozen=True)
class AuthConfig:
    magic_link_ttl_s: int = setting(900, doc="a magic link works this long (15 minutes)", check=at_least(60))
    token_ttl_days: int = setting(7, doc="lifetime of a staff/admin JWT", check=at_least(1))
    device_token_days: int = setting(
        365, doc="lifetime of a device JWT (revoke a box from the console or `djamms-hub device revoke`)",
        check=at_least(1),
    )
    pairing_code_ttl_s: int = setting(600, doc="a box's pairing code works this long (10 minutes)",
                                      check=between(60, 86400))
    auto_create_users: bool = setting(
        True, doc="first login of an unknown email creates a staff user", env="DJAMMS_ALLOW_AUTO_CREATE_USERS"
    )
    redirect_prefixes: tuple[str, ...] = setting(
        ("https://www.djamms.app/",),
        doc="magic-link redirectUrl must start with public_url or one of these (no open redirects in our mail)",
    )


@dataclass(frozen=True)
class SmtpConfig:
    host: str = setting("", doc="SMTP server; empty = write magic links to the log instead of mailing them")
    port: int = setting(587, doc="SMTP port", check=between(1, 65535))
    username: str = setting("", doc="SMTP login; empty = no AUTH")
    password: str = secret(doc="SMTP password", env="DJAMMS_SMTP_PASSWORD")
    starttls: bool = setting(True, doc="upgrade the connection with STARTTLS before sending")
    sender: str = setting("DJAMMS <noreply@djamms.app>", doc="From: address of magic-link mails")
    timeout_s: float = setting(10.0, doc="give up on the SMTP server after this long", check=at_least(1))


@dataclass(frozen=True)
class RegistryConfig:
    stale_after_s: float = setting(120.0, doc="a master silent this long may be taken over", check=at_least(0.5))
    expire_after_s: float = setting(86400.0, doc="a lease without heartbeat this long is dropped", check=at_least(1))
    instance_grace_s: float = setting(
        15.0, doc="another process with the lease holder's device token is refused while the holder beat within "
        "this long (a copied token); after it, a restarted daemon takes its lease back", check=at_least(0))
    require_instance_id: bool = setting(
        False, doc="refuse heartbeats and releases that name no process (instanceId): every process is then "
        "checked for a copied token. Register hands each process an instanceId to echo; turn this on once every "
        "player sends it back (older clients that do not stop working)")


@dataclass(frozen=True)
class RequestRulesConfig:
    max_duration_s: float = setting(300.0, doc="paid requests for longer songs are refused (refund due)")
    artist_limit: int = setting(3, doc="paid requests per artist per venue within artist_window_s", check=at_least(1))
    artist_window_s: float = setting(1800.0, doc="window of the per-artist limit", check=at_least(1))
    allow_urls: bool = setting(False, doc="accept http(s) media URLs as well as video ids in songs")
    # With URLs allowed, a patron must not point the boxes (or the hub) inside a network: see shared/addresses.py.
    allowed_hosts: tuple[str, ...] = setting(
        (), doc="hosts (names or IPs) media URLs may name although internal (loopback, private, link-local)"
    )


@dataclass(frozen=True)
class LimitsConfig:
    magic_links_per_email: int = setting(
        5, doc="magic links one email may ask for per window from one client address (so nobody else's "
        "requests lock a person out)", check=at_least(1))
    magic_links_per_address: int = setting(20, doc="magic links one client address may ask for per window")
    magic_link_window_s: float = setting(900.0, doc="window of the two magic-link limits", check=at_least(1))
    requests_per_client: int = setting(10, doc="paid requests one client address may post per window")
    requests_window_s: float = setting(60.0, doc="window of the paid-request limit", check=at_least(1))
    device_errors_per_device: int = setting(60, doc="error reports one device may post per window; more are refused",
                                            check=at_least(1))
    device_errors_window_s: float = setting(3600.0, doc="window of the error-report limit", check=at_least(1))
    pairings_per_address: int = setting(10, doc="pairing codes one client address may ask for per window",
                                        check=at_least(1))
    pairing_claims_per_venue: int = setting(10, doc="pairing codes a venue's staff may try per window",
                                            check=at_least(1))
    pairing_window_s: float = setting(900.0, doc="window of the two pairing limits", check=at_least(1))
    trust_forwarded_for: bool = setting(False, doc="take the client address from X-Forwarded-For (behind a proxy)")
    requests_per_patron: int = setting(3, doc="requests one patron (browser id + address) may make per window",
                                       check=at_least(1))
    patron_window_s: float = setting(900.0, doc="window of the per-patron limit", check=at_least(1))


@dataclass(frozen=True)
class CorsConfig:
    allowed_origins: tuple[str, ...] = setting(
        (), doc="origins (scheme://host[:port]) whose pages may call the API from a browser; none by default")


@dataclass(frozen=True)
class FeedConfig:
    retain_changes: int = setting(1000, doc="changes kept per venue; an edge further behind gets a snapshot")
    ping_interval_s: float = setting(15.0, doc="WebSocket ping interval of the change feed", check=at_least(1))


def _provider_check(value: str) -> str | None:
    return None if value in ("free", "stripe") else "must be free or stripe"


@dataclass(frozen=True)
class PaymentsConfig:
    provider: str = setting("free", doc="free (no venue may charge) or stripe (venues with a price > 0 charge)",
                            check=_provider_check)
    stripe_secret_key: str = secret(doc="Stripe secret API key (sk_...); required with provider = stripe",
                                    env="DJAMMS_STRIPE_SECRET_KEY")
    stripe_webhook_secret: str = secret(doc="signing secret of the Stripe webhook endpoint (whsec_...)",
                                        env="DJAMMS_STRIPE_WEBHOOK_SECRET")
    stripe_api_base: str = setting("https://api.stripe.com", doc="Stripe API address (tests point it at a fake)")
    checkout_ttl_s: int = setting(1800, doc="an unpaid checkout expires after this long", check=between(1800, 86400))
    refund_interval_s: float = setting(30.0, doc="how often the refund worker looks for refunds due",
                                       check=at_least(0.05))
    refund_retry_max_s: float = setting(3600.0, doc="longest wait between attempts of a failing refund",
                                        check=at_least(1))
    unplayed_refund_after_h: float = setting(
        12.0, doc="a paid request still unplayed this long after it was queued (the venue closed, no box played "
        "it) is refunded; 0 = never", check=at_least(0))


@dataclass(frozen=True)
class ScheduleConfig:
    check_interval_s: float = setting(
        15.0, doc="how often the hub checks venues' weekly schedules (a switch is at most this late)",
        check=between(0.05, 300.0),
    )


@dataclass(frozen=True)
class ConnectionsConfig:
    """What one client may hold of the hub's sockets and file descriptors (see docs/hub-deploy.md)."""

    header_timeout_s: float = setting(10.0, doc="a request's line and headers must arrive within this long",
                                      check=at_least(0.1))
    body_timeout_s: float = setting(30.0, doc="a request body must arrive within this long (else 408)",
                                    check=at_least(0.1))
    keepalive_timeout_s: float = setting(15.0, doc="an idle keep-alive connection is closed after this long",
                                         check=at_least(0.1))
    max_per_address: int = setting(128, doc="open connections one client address may hold; 0 = no cap "
                                   "(behind a reverse proxy, which then caps per client)", check=at_least(0))
    feed_sockets_per_token: int = setting(4, doc="change-feed WebSockets one token may hold open at once",
                                          check=at_least(1))
    write_timeout_s: float = setting(30.0, doc="a connection whose unsent answer stays over the write buffer's "
                                     "high-water mark this long (a client that does not read) is aborted",
                                     check=at_least(0.1))


@dataclass(frozen=True)
class HubConfig:
    host: str = setting("127.0.0.1", doc="address the hub listens on")
    port: int = setting(8700, doc="TCP port the hub listens on", check=between(1, 65535))
    public_url: str = setting("http://127.0.0.1:8700", doc="URL patrons and edges use (magic links point here)")
    jwt_secret: str = secret(
        doc=f"HS256 signing key, at least {MIN_JWT_SECRET_BYTES} bytes; no default on purpose",
        env="DJAMMS_JWT_SECRET",
        check=_jwt_secret_check,
    )
    max_body_bytes: int = setting(65536, doc="larger request bodies are refused with 413", check=at_least(1024))
    log_level: str = setting("INFO", doc="DEBUG, INFO, WARNING or ERROR")
    store: StoreConfig = field(default_factory=StoreConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    requests: RequestRulesConfig = field(default_factory=RequestRulesConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    feed: FeedConfig = field(default_factory=FeedConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    connections: ConnectionsConfig = field(default_factory=ConnectionsConfig)
    cors: CorsConfig = field(default_factory=CorsConfig)
    payments: PaymentsConfig = field(default_factory=PaymentsConfig)

    def startup_problems(self) -> list[str]:
        """Problems that only matter when the hub itself is started."""
        problems = []
        if not self.jwt_secret:
            problems.append(f"hub.jwt_secret: required to run the hub (at least {MIN_JWT_SECRET_BYTES} bytes; "
                            "or set DJAMMS_JWT_SECRET)")
        if self.payments.provider == "stripe":
            for key in ("stripe_secret_key", "stripe_webhook_secret"):
                if not getattr(self.payments, key):
                    problems.append(f"hub.payments.{key}: required with provider = stripe "
                                    f"(or set DJAMMS_{key.upper()})")
        return problems
