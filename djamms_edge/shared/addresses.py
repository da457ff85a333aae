"""Which network addresses media may be fetched from: public ones, and the hosts a venue allows by name.

A patron's media URL must never make a box (or the hub) reach inside the network it sits in: loopback
(the box's own status page), link-local (169.254.169.254, a cloud's metadata service), private and
unique-local ranges (the venue's router, a NAS), or anything else that is not globally routable. The
check is on the *address* a name resolves to, at every connection, so a public name pointing inside
(or a redirect there) is refused as well. A venue serving its own media from its LAN lists that host.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")


def internal_kind(address: str) -> str | None:
    """What kind of internal address ``address`` (an IP literal) is, or None for a public one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) is not part of it
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if ip.is_loopback:
        return "loopback"
    if ip.is_unspecified:  # connecting to 0.0.0.0 or :: reaches this host
        return "unspecified"
    if ip.is_link_local:
        return "link-local"
    if ip in _UNIQUE_LOCAL:
        return "unique-local"
    if ip.is_private:
        return "private"
    if ip.is_multicast or not ip.is_global:
        return "non-public"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Public addresses are fine; an internal one only for a host named in ``allowed_hosts`` (its name as in
    the URL, or the IP literal itself)."""

    allowed_hosts: frozenset[str] = frozenset()

    @classmethod
    def allowing(cls, hosts: Collection[str]) -> AddressPolicy:
        return cls(frozenset(_normal(h) for h in hosts))

    def refusal(self, host: str, address: str) -> str | None:
        """Why connecting to ``address`` (which ``host`` resolved to) is refused, or None if it is allowed."""
        kind = internal_kind(address)
        if kind is None or _normal(host) in self.allowed_hosts or _normal(address) in self.allowed_hosts:
            return None
        shown = host if _normal(host) == _normal(address) else f"{host} ({address})"
        return f"refused to fetch from {shown}: a {kind} address (allow the host in config to use it)"


async def url_refusal(url: str, policy: AddressPolicy, *, timeout_s: float = 3.0) -> str | None:
    """Why fetching ``url`` is refused (its host is, or resolves to, an internal address), or None. A name
    that cannot be resolved now is not refused here: the fetch checks every connection it makes again."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return "the URL has no host"
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        return "the URL's port is not a number"
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout_s
        )
    except (OSError, TimeoutError, UnicodeError):
        return None
    for info in infos:
        refusal = policy.refusal(host, str(info[4][0]))
        if refusal is not None:
            return refusal
    return None


def _normal(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()
