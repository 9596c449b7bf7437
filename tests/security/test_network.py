"""Client IP behind trusted proxies: spoofing, chains, CIDRs, IPv6, garbage (docs/SECURITY.md)."""

from __future__ import annotations

import ipaddress
import time

import pytest

from orgauth.models import IP_MAX_LENGTH
from orgauth.security.network import MAX_FORWARDED_HOPS, TrustedProxies, normalize_ip, parse_ip

PROXIES = TrustedProxies(["10.0.0.0/8", "192.0.2.1", "2001:db8:ffff::/48"])


def test_spoofed_header_from_an_untrusted_peer_is_ignored() -> None:
    assert PROXIES.client_ip("203.0.113.7", "1.2.3.4") == "203.0.113.7"
    assert PROXIES.client_ip("203.0.113.7", "10.0.0.1, 1.2.3.4") == "203.0.113.7"


def test_no_trusted_proxies_means_the_header_is_never_used() -> None:
    nobody = TrustedProxies([])
    assert nobody.client_ip("10.0.0.1", "1.2.3.4") == "10.0.0.1"
    assert not nobody.is_trusted("10.0.0.1")
    assert not TrustedProxies(["", "  "]).is_trusted("10.0.0.1")


def test_trusted_proxy_reports_the_client() -> None:
    assert PROXIES.client_ip("10.1.2.3", "198.51.100.20") == "198.51.100.20"


def test_chain_is_walked_from_the_right_past_trusted_proxies() -> None:
    # client-written junk, the real client, then two of our proxies
    header = "1.1.1.1, 198.51.100.20, 10.9.9.9, 192.0.2.1"
    assert PROXIES.client_ip("10.0.0.5", header) == "198.51.100.20"


def test_left_most_address_is_used_when_every_hop_is_trusted() -> None:
    assert PROXIES.client_ip("10.0.0.5", "10.0.0.3, 10.0.0.2, 10.0.0.1") == "10.0.0.3"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("198.51.100.20, garbage, 10.0.0.2", "10.0.0.2"),  # walk stops at the bad entry
        ("198.51.100.20, 10.0.0.2:8080", "10.0.0.5"),  # ports are not addresses
        ("198.51.100.20, [2001:db8::1]", "10.0.0.5"),
        ("198.51.100.20, fe80::1%eth0", "10.0.0.5"),  # zone ids are refused
        ("198.51.100.20, , 10.0.0.2", "10.0.0.2"),
        ("198.51.100.20, " + "1" * 100, "10.0.0.5"),
        ("unknown", "10.0.0.5"),
        ("<script>alert(1)</script>", "10.0.0.5"),
        ("", "10.0.0.5"),
        ("   ", "10.0.0.5"),
        (" 198.51.100.20 ", "198.51.100.20"),
    ],
)
def test_invalid_entries_end_the_walk_at_the_last_good_address(header: str, expected: str) -> None:
    assert PROXIES.client_ip("10.0.0.5", header) == expected


def test_ipv6_peers_clients_and_networks() -> None:
    assert PROXIES.client_ip("2001:db8:ffff::1", "2001:db8:1::42") == "2001:db8:1::42"
    assert PROXIES.client_ip("2001:db8:1::1", "198.51.100.20") == "2001:db8:1::1"
    # Canonical, compressed text whatever the header's spelling.
    assert (
        PROXIES.client_ip("10.0.0.1", "2001:0DB8:0001:0000:0000:0000:0000:0042") == "2001:db8:1::42"
    )


def test_ipv4_mapped_ipv6_is_normalised() -> None:
    assert PROXIES.client_ip("::ffff:10.0.0.1", "::ffff:198.51.100.20") == "198.51.100.20"
    assert PROXIES.client_ip("::ffff:203.0.113.7", "1.2.3.4") == "203.0.113.7"
    assert TrustedProxies(["::ffff:10.0.0.0/104"]).is_trusted("10.20.30.40")
    assert normalize_ip("::ffff:127.0.0.1") == "127.0.0.1"


def test_trust_everything() -> None:
    everyone = TrustedProxies(["*"])
    assert everyone.is_trusted("203.0.113.7")
    assert not everyone.is_trusted("garbage")
    assert everyone.client_ip("203.0.113.7", "198.51.100.20, 10.0.0.1") == "198.51.100.20"
    assert everyone.client_ip(None, "198.51.100.20") == "198.51.100.20"
    assert everyone.client_ip(None, None) is None


@pytest.mark.parametrize("peer", [None, "", "testclient", "unix:/run/app.sock", "1.2.3.4:80"])
def test_unusable_peer_gives_no_address(peer: str | None) -> None:
    assert PROXIES.client_ip(peer, "198.51.100.20") is None


def test_is_trusted() -> None:
    assert PROXIES.is_trusted("10.255.255.255")
    assert PROXIES.is_trusted("192.0.2.1")
    assert not PROXIES.is_trusted("192.0.2.2")
    assert PROXIES.is_trusted("2001:db8:ffff:1::1")
    assert not PROXIES.is_trusted("2001:db8:fffe::1")
    assert not PROXIES.is_trusted("not an ip")
    assert not PROXIES.is_trusted("")


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="not-an-ip"):
        TrustedProxies(["not-an-ip"])


def test_very_long_header_is_handled_quickly() -> None:
    header = ", ".join(["10.0.0.1"] * 12_000)  # about 120 KB of trusted hops
    assert len(header) > 100_000
    started = time.perf_counter()
    for _ in range(100):
        assert PROXIES.client_ip("10.0.0.5", header) == "10.0.0.1"
        assert PROXIES.client_ip("10.0.0.5", "x" * 100_000) == "10.0.0.5"
        assert PROXIES.client_ip("10.0.0.5", "1.2.3.4" + "," * 100_000) == "10.0.0.5"
    per_call = (time.perf_counter() - started) / 300
    assert per_call < 0.005  # measured well under 1 ms


def test_only_the_last_hops_are_read() -> None:
    hops = [f"10.0.{i // 256}.{i % 256}" for i in range(MAX_FORWARDED_HOPS * 2)]
    header = ", ".join(["198.51.100.20", *hops])
    # Beyond MAX_FORWARDED_HOPS trusted hops the walk stops at the furthest one it read.
    assert PROXIES.client_ip("10.0.0.5", header) == hops[-MAX_FORWARDED_HOPS]


@pytest.mark.parametrize(
    "value",
    ["1.2.3.4", "::1", "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", "0000:0000::0001"],
)
def test_results_are_valid_and_fit_the_column(value: str) -> None:
    result = normalize_ip(value)
    assert result is not None
    assert len(result) <= IP_MAX_LENGTH
    assert str(ipaddress.ip_address(result)) == result


def test_parse_ip_refuses_overlong_text_without_parsing() -> None:
    assert parse_ip(" " * 10 + "1.2.3.4" + " " * 10) == ipaddress.ip_address("1.2.3.4")
    assert parse_ip("1" * (IP_MAX_LENGTH + 1)) is None
    assert parse_ip(None) is None
