"""The client's IP address, trusting ``X-Forwarded-For`` only from known proxies (docs/SECURITY.md).

``X-Forwarded-For`` is a list each proxy appends its peer to, so only the entries added by
proxies we trust are reliable: anything further left may have been written by the client.
:class:`TrustedProxies` therefore walks the list from the right, past our own proxies, and
takes the first address they did not vouch for.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Final

from orgauth.lengths import IP_MAX_LENGTH

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Entries of ``X-Forwarded-For`` looked at, from the right. No real deployment has more
#: hops; the cap keeps a 100 KB header as cheap as a short one.
MAX_FORWARDED_HOPS: Final = 32
TRUST_ALL: Final = "*"


def parse_ip(value: str | None) -> IPAddress | None:
    """Parse one IP address; IPv4-mapped IPv6 becomes IPv4. None when not a plain address.

    Ports, brackets, zone ids (``fe80::1%eth0``) and anything longer than an IP column are
    refused rather than guessed at.
    """
    if not value:
        return None
    value = value.strip()
    if not value or len(value) > IP_MAX_LENGTH:
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            return None
        if address.ipv4_mapped is not None:
            # A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; store one form.
            return address.ipv4_mapped
    return address


def normalize_ip(value: str | None) -> str | None:
    """The canonical text of an IP address (at most 45 characters), or None if invalid."""
    address = parse_ip(value)
    return str(address) if address is not None else None


def _parse_network(entry: str) -> IPNetwork:
    network = ipaddress.ip_network(entry.strip(), strict=False)
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            # "::ffff:10.0.0.0/104" means 10.0.0.0/8: compare like with like.
            return ipaddress.IPv4Network(f"{mapped}/{network.prefixlen - 96}", strict=False)
    return network


class TrustedProxies:
    """The proxies allowed to tell us the client's address (``FORWARDED_ALLOW_IPS``).

    ``entries`` are IP addresses or CIDR networks; ``"*"`` trusts every peer (only for a
    server reachable solely through a proxy). No entries trust no one.
    """

    def __init__(self, entries: Sequence[str]) -> None:
        self.trust_all = False
        networks: list[IPNetwork] = []
        for entry in entries:
            if entry.strip() == TRUST_ALL:
                self.trust_all = True
            elif entry.strip():
                networks.append(_parse_network(entry))  # ValueError names a bad entry
        self._networks = tuple(networks)

    def __repr__(self) -> str:
        entries = [TRUST_ALL] if self.trust_all else [str(n) for n in self._networks]
        return f"TrustedProxies({entries!r})"

    def is_trusted(self, ip: str) -> bool:
        """Whether ``ip`` is one of our proxies; invalid addresses are never trusted."""
        address = parse_ip(ip)
        return address is not None and self._trusts(address)

    def _trusts(self, address: IPAddress) -> bool:
        if self.trust_all:
            return True
        # Membership across IP versions is simply False, so mixed lists need no special case.
        return any(address in network for network in self._networks)

    def client_ip(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The client's address given the socket ``peer`` and the ``X-Forwarded-For`` value.

        An untrusted (or invalid) peer is the answer, whatever the header says. Behind a
        trusted peer the header is walked from the right: trusted addresses are skipped and
        the first untrusted valid one is returned; if all are trusted, the left-most one. An
        invalid entry ends the walk at the last good address. Several header lines must be
        joined with ``","`` in order. The result is a valid IP string or None.
        """
        peer_address = parse_ip(peer)
        if peer_address is None:
            if not self.trust_all:
                return None
            # "*" with no usable peer (e.g. a Unix socket behind the proxy): only the
            # header can say who the client is.
        elif not self._trusts(peer_address):
            return str(peer_address)
        if not forwarded_for:
            return str(peer_address) if peer_address is not None else None

        entries = forwarded_for.rsplit(",", MAX_FORWARDED_HOPS)
        if len(entries) > MAX_FORWARDED_HOPS:
            entries = entries[1:]  # the unsplit remainder further left is never read
        last_good = peer_address
        for entry in reversed(entries):
            address = parse_ip(entry)
            if address is None:
                break
            if not self._trusts(address):
                return str(address)
            last_good = address
        return str(last_good) if last_good is not None else None


__all__ = [
    "MAX_FORWARDED_HOPS",
    "TRUST_ALL",
    "TrustedProxies",
    "normalize_ip",
    "parse_ip",
]
