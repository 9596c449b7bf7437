"""Which webhook URLs and addresses may be called: the SSRF rules of docs/SECURITY.md.

Two layers, both needed:

* the URL *shape* (:func:`parse_webhook_url`): https only (http too in development), a
  plain host, no user info or fragment, a valid port, nothing that different URL parsers
  read differently;
* the *address* (:func:`address_allowed`): only globally routable unicast addresses. A
  name is checked when the endpoint is created or updated (:func:`check_webhook_url`) and
  again, on the very addresses connected to, at every delivery
  (``orgauth.webhooks.transport``) - the second check is what stops DNS rebinding.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import unicodedata
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeAlias

MAX_URL_LENGTH = 2048
#: How long endpoint creation and update wait for DNS.
LOOKUP_TIMEOUT_SECONDS = 5.0
DEFAULT_PORTS = {"http": 80, "https": 443}

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``(host, port) -> IP address strings``; raises :class:`socket.gaierror` (an
#: :class:`OSError`) when the name does not resolve.
Resolver: TypeAlias = Callable[[str, int], Awaitable[list[str]]]

_PORT = re.compile(r"[0-9]{1,5}")
# Letters, digits, hyphen and underscore (seen in real DNS names) after IDNA encoding;
# anything else (``%``, ``*``, quotes, ...) is refused rather than passed to a resolver.
_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
# WHATWG: a host whose last label is a number is an IPv4 address. getaddrinfo() agrees and
# also accepts ``127.1``, ``2130706433``, ``0x7f.1`` or ``0177.0.0.1`` - so such a host
# must be a plain dotted quad, or it is refused.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


class UrlNotAllowed(ValueError):
    """The URL may not be used for a webhook; ``reason`` says why in one short sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class WebhookUrl:
    """A URL that passed the shape rules, split the way it will be requested."""

    url: str  #: the normalised URL: what is stored and shown
    scheme: str  #: ``https`` or ``http``
    host: str  #: lower-case ASCII (IDNA) host name or IP address; IPv6 without brackets
    port: int  #: explicit, or the scheme's default
    target: str  #: path and query for the request line; ``/`` when the path is empty
    is_ip_literal: bool


def host_is_localhost(host: str) -> bool:
    """``localhost`` and ``*.localhost`` (RFC 6761), any case, with or without a final dot.

    Resolvers may answer these names without DNS, so they count as loopback whatever a
    lookup would say.
    """
    name = host.lower().removesuffix(".")
    return name == "localhost" or name.endswith(".localhost")


def address_allowed(address: str | IPAddress) -> bool:
    """Whether a webhook may connect to this IP address.

    Only global unicast addresses (Python's ``is_global``, not multicast): loopback,
    private, link-local (cloud metadata services included), CGNAT, unspecified, reserved
    and documentation ranges are refused. An IPv4-mapped IPv6 address is judged by its
    IPv4 address, and a 6to4, Teredo or NAT64 address also by the IPv4 address inside
    it. A string that is not an IP address is refused.
    """
    if isinstance(address, str):
        try:
            address = ipaddress.ip_address(address)
        except ValueError:
            return False
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            # ::ffff:127.0.0.1 reaches 127.0.0.1 on a dual-stack socket.
            address = address.ipv4_mapped
        elif any(not address_allowed(inner) for inner in _embedded_ipv4(address)):
            # Stricter than is_global: a 6to4, Teredo or NAT64 address whose IPv4 part is
            # refused is refused too, since a translator may deliver it there.
            return False
    return address.is_global and not address.is_multicast


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    inner: list[ipaddress.IPv4Address] = []
    if address.sixtofour is not None:
        inner.append(address.sixtofour)
    if address.teredo is not None:
        inner.extend(address.teredo)
    if address in _NAT64:
        inner.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return inner


def _has_forbidden_character(url: str) -> bool:
    # Whitespace and control characters: urlsplit() silently drops some of them (tab, CR,
    # LF) and strips others at the ends, so what is checked would differ from what is
    # stored. Format characters (zero-width, bidi overrides) are invisible in the UI.
    # Backslashes: browsers read ``https://evil.com\@good.com`` as host evil.com, urlsplit
    # as good.com; refusing them removes the disagreement.
    return any(ch.isspace() or ch == "\\" or unicodedata.category(ch) in ("Cc", "Cf") for ch in url)


def _split_netloc(netloc: str) -> tuple[str, str | None, bool]:
    """``(host, port text or None, bracketed)`` from a netloc without user info."""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end == -1:
            raise UrlNotAllowed("The URL's host is not valid.")
        host, rest = netloc[1:end], netloc[end + 1 :]
        if rest and not rest.startswith(":"):
            raise UrlNotAllowed("The URL's host is not valid.")
        return host, (rest[1:] if rest else None), True
    host, colon, port = netloc.partition(":")
    return host, (port if colon else None), False


def _normalise_host(raw: str, *, bracketed: bool) -> tuple[str, bool]:
    """``(host, is_ip_literal)``: lower-case ASCII, IPv6 without brackets."""
    if not raw:
        raise UrlNotAllowed("The URL must include a host.")
    if "%" in raw:
        # Percent-encoded hosts and IPv6 zone identifiers (``fe80::1%25eth0``).
        raise UrlNotAllowed("The URL's host may not contain '%'.")
    if bracketed:
        try:
            return str(ipaddress.IPv6Address(raw)), True
        except ValueError:
            raise UrlNotAllowed("The URL's host is not a valid IPv6 address.") from None
    host = raw
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise UrlNotAllowed("The URL's host name cannot be encoded (IDNA).") from None
    # IDNA maps e.g. full-width letters and digits to ASCII, so every check below runs on
    # the encoded name.
    host = host.lower()
    labels = host.removesuffix(".").split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:
            return str(ipaddress.IPv4Address(host)), True
        except ValueError:
            raise UrlNotAllowed("The URL's host is not a valid IPv4 address.") from None
    if len(host.removesuffix(".")) > 253 or not all(_LABEL.fullmatch(x) for x in labels):
        raise UrlNotAllowed("The URL's host is not a valid host name.")
    return host, False


def _ascii_only(text: str) -> str:
    """Percent-encode (UTF-8) non-ASCII characters; ASCII, ``%XX`` escapes included, stays."""
    return _NON_ASCII.sub(lambda m: urllib.parse.quote(m.group(), safe=""), text)


def parse_webhook_url(url: str, *, allow_http: bool) -> WebhookUrl:
    """Check the URL's shape and normalise it; raises :class:`UrlNotAllowed`.

    No name is resolved here: :func:`check_webhook_url` adds the address rules.
    """
    if len(url) > MAX_URL_LENGTH:
        raise UrlNotAllowed(f"The URL may not be longer than {MAX_URL_LENGTH} characters.")
    if _has_forbidden_character(url):
        raise UrlNotAllowed(
            "The URL may not contain whitespace, control characters or backslashes."
        )
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # e.g. an unclosed "[" in the host
        raise UrlNotAllowed("The URL is not valid.") from None
    allowed_schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in allowed_schemes:
        raise UrlNotAllowed(
            "The URL must start with https:// or http://."
            if allow_http
            else "The URL must start with https://."
        )
    if "#" in url:
        raise UrlNotAllowed("The URL may not contain a fragment (#).")
    if "@" in parts.netloc:
        raise UrlNotAllowed("The URL may not contain a user name or password.")
    # "https:///path" and "https:host" leave the netloc empty.
    raw_host, port_text, bracketed = _split_netloc(parts.netloc)
    host, is_ip_literal = _normalise_host(raw_host, bracketed=bracketed)

    default_port = DEFAULT_PORTS[parts.scheme]
    if port_text is None:
        port = default_port
    else:
        if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
            raise UrlNotAllowed("The URL's port must be a number from 1 to 65535.")
        port = int(port_text)

    target = _ascii_only(parts.path or "/")
    if parts.query:
        target += "?" + _ascii_only(parts.query)
    netloc = f"[{host}]" if ":" in host else host
    if port != default_port:
        netloc += f":{port}"
    normalised = f"{parts.scheme}://{netloc}{target}"
    if len(normalised) > MAX_URL_LENGTH:
        raise UrlNotAllowed(f"The URL may not be longer than {MAX_URL_LENGTH} characters.")
    return WebhookUrl(
        url=normalised,
        scheme=parts.scheme,
        host=host,
        port=port,
        target=target,
        is_ip_literal=is_ip_literal,
    )


async def system_resolver(host: str, port: int) -> list[str]:
    """The system's addresses for ``host`` (``getaddrinfo``), de-duplicated, order kept."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: dict[str, None] = {}
    for family, _type, _proto, _canonname, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            addresses.setdefault(str(sockaddr[0]), None)
    return list(addresses)


_BLOCKED_REASON = (
    "The URL's host {what} an address that webhooks may not reach "
    "(loopback, private, link-local or reserved)."
)


async def check_webhook_url(
    url: str,
    *,
    allow_http: bool,
    allow_private: bool,
    resolver: Resolver = system_resolver,
) -> WebhookUrl:
    """The check when an endpoint is created or updated; raises :class:`UrlNotAllowed`.

    Shape rules, then (unless ``allow_private``) the address rules: localhost names, a
    refused IP literal, or a name that resolves now to *any* refused address are refused.
    A name that does not resolve (within 5 seconds) is accepted - it may exist later, and
    every delivery checks the addresses it connects to anyway. The reason never names the resolved
    addresses, so the check cannot be used to map an internal network.
    """
    parsed = parse_webhook_url(url, allow_http=allow_http)
    if allow_private:
        return parsed
    if host_is_localhost(parsed.host):
        raise UrlNotAllowed(_BLOCKED_REASON.format(what="is"))
    if parsed.is_ip_literal:
        if not address_allowed(parsed.host):
            raise UrlNotAllowed(_BLOCKED_REASON.format(what="is"))
        return parsed
    try:
        # A request waits for this lookup: a resolver that hangs counts as no answer.
        async with asyncio.timeout(LOOKUP_TIMEOUT_SECONDS):
            addresses = await resolver(parsed.host, parsed.port)
    except (OSError, UnicodeError, TimeoutError):  # socket.gaierror is an OSError
        return parsed
    if not all(address_allowed(address) for address in addresses):
        raise UrlNotAllowed(_BLOCKED_REASON.format(what="resolves to"))
    return parsed
