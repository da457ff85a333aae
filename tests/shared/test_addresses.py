"""Which addresses media may come from: a table of public and internal addresses, and the allow-list."""

from __future__ import annotations

import pytest

from djamms_edge.shared.addresses import AddressPolicy, internal_kind, url_refusal


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped: the same address
        ("169.254.169.254", "link-local"),  # a cloud's metadata service
        ("fe80::1%eth0", "link-local"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),  # the venue's router
        ("fd12:3456::1", "unique-local"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 -- an address to classify, not to bind
        ("::", "unspecified"),
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
        ("224.0.0.1", "non-public"),
        ("8.8.8.8", None),
        ("142.250.74.206", None),
        ("2a00:1450:4001:82b::200e", None),
    ],
)
def test_internal_addresses_are_named(address: str, kind: str | None) -> None:
    assert internal_kind(address) == kind


def test_an_allowed_host_may_be_internal_by_its_name_or_its_address() -> None:
    policy = AddressPolicy.allowing(["NAS.lan.", "[::1]"])
    assert policy.refusal("nas.lan", "192.168.1.20") is None
    assert policy.refusal("localhost", "::1") is None
    refusal = policy.refusal("evil.example", "192.168.1.20")
    assert refusal is not None and "evil.example (192.168.1.20)" in refusal and "private" in refusal
    assert policy.refusal("evil.example", "93.184.216.34") is None


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://127.0.0.1:8080/status", True),
        ("http://localhost/x.mp4", True),  # a name, resolved: loopback
        ("http://169.254.169.254/latest/meta-data/", True),
        ("http://[::1]/x.mp4", True),
        ("http://[::ffff:7f00:1]/x.mp4", True),
        ("http://10.1.2.3/x.mp4", True),
        ("http://2130706433/x.mp4", True),  # 127.0.0.1 as one number: what the resolver makes of it counts
        ("http://93.184.216.34/x.mp4", False),
        ("http://no-such-host.invalid/x.mp4", False),  # unresolvable now: the fetch checks its connections
    ],
)
async def test_a_url_is_refused_by_what_its_host_resolves_to(url: str, refused: bool) -> None:
    assert (await url_refusal(url, AddressPolicy()) is not None) == refused
