"""The SSRF rules for webhook URLs: shape, address ranges, and the check at creation."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest

from orgauth.webhooks import addresses as addresses_module
from orgauth.webhooks.addresses import (
    MAX_URL_LENGTH,
    Resolver,
    UrlNotAllowed,
    WebhookUrl,
    address_allowed,
    check_webhook_url,
    host_is_localhost,
    parse_webhook_url,
    system_resolver,
)


class FakeResolver:
    """Answers from a table and records every lookup; unknown names do not resolve."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


def fullwidth(text: str) -> str:
    """The full-width look-alikes of ASCII letters, digits and dots (U+FF01 onwards)."""
    return "".join(chr(ord(ch) + 0xFEE0) for ch in text)


# --- addresses -------------------------------------------------------------------------

REFUSED_ADDRESSES = [
    "127.0.0.1",
    "127.255.255.254",
    "::1",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.0.1",
    "192.168.255.255",
    "169.254.169.254",  # cloud metadata
    "169.254.0.1",
    "fd00:ec2::254",  # AWS metadata over IPv6
    "fe80::1",
    "fc00::1",
    "fdff:ffff::1",
    "100.64.0.1",  # CGNAT
    "100.127.255.254",
    "0.0.0.0",  # noqa: S104 - an address to refuse, nothing binds to it
    "0.1.2.3",
    "::",
    "224.0.0.1",
    "239.255.255.250",
    "ff02::1",
    "ff0e::1",
    "192.0.2.1",  # documentation
    "198.51.100.7",
    "203.0.113.9",
    "2001:db8::1",
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "198.18.0.1",  # benchmarking
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:224.0.0.1",
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
]

ALLOWED_ADDRESSES = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.215.14",
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "2002:808:808::1",  # 6to4 of 8.8.8.8
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
]


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_refused_addresses(address: str) -> None:
    assert address_allowed(address) is False
    assert address_allowed(ipaddress.ip_address(address)) is False


@pytest.mark.parametrize("address", ALLOWED_ADDRESSES)
def test_allowed_addresses(address: str) -> None:
    assert address_allowed(address) is True
    assert address_allowed(ipaddress.ip_address(address)) is True


@pytest.mark.parametrize("text", ["", "localhost", "example.com", "[::1]", "8.8.8", "1.2.3.4.5"])
def test_text_that_is_not_an_address_is_refused(text: str) -> None:
    assert address_allowed(text) is False


@pytest.mark.parametrize(
    "host",
    ["localhost", "LOCALHOST", "LOCALHOST.", "localhost.", "foo.localhost", "a.b.LocalHost."],
)
def test_localhost_names(host: str) -> None:
    assert host_is_localhost(host) is True


@pytest.mark.parametrize(
    "host", ["localhost.com", "notlocalhost", "mylocalhost", "localhost.example", "127.0.0.1"]
)
def test_names_that_are_not_localhost(host: str) -> None:
    assert host_is_localhost(host) is False


# --- URL shape -------------------------------------------------------------------------


def test_parse_normalises() -> None:
    parsed = parse_webhook_url("HTTPS://Hooks.Example.COM/In/Box?b=2&a=1", allow_http=False)
    assert parsed == WebhookUrl(
        url="https://hooks.example.com/In/Box?b=2&a=1",
        scheme="https",
        host="hooks.example.com",
        port=443,
        target="/In/Box?b=2&a=1",
        is_ip_literal=False,
    )


@pytest.mark.parametrize(
    ("url", "normalised", "port", "target"),
    [
        ("https://example.com", "https://example.com/", 443, "/"),
        ("https://example.com:443/x", "https://example.com/x", 443, "/x"),
        ("https://example.com:8443/x", "https://example.com:8443/x", 8443, "/x"),
        ("https://example.com?q=1", "https://example.com/?q=1", 443, "/?q=1"),
        (
            "https://example.com/%7Euser/a%20b",
            "https://example.com/%7Euser/a%20b",
            443,
            "/%7Euser/a%20b",
        ),
        (
            "https://example.com/ü?q=é",
            "https://example.com/%C3%BC?q=%C3%A9",
            443,
            "/%C3%BC?q=%C3%A9",
        ),
    ],
)
def test_parse_ports_and_targets(url: str, normalised: str, port: int, target: str) -> None:
    parsed = parse_webhook_url(url, allow_http=False)
    assert (parsed.url, parsed.port, parsed.target) == (normalised, port, target)


def test_http_only_when_allowed() -> None:
    with pytest.raises(UrlNotAllowed):
        parse_webhook_url("http://example.com/hook", allow_http=False)
    parsed = parse_webhook_url("http://example.com/hook", allow_http=True)
    assert (parsed.scheme, parsed.port, parsed.url) == ("http", 80, "http://example.com/hook")
    assert parse_webhook_url("http://example.com:80/", allow_http=True).url == "http://example.com/"


def test_ip_literals() -> None:
    v4 = parse_webhook_url("https://8.8.8.8/x", allow_http=False)
    assert (v4.host, v4.is_ip_literal) == ("8.8.8.8", True)
    v6 = parse_webhook_url("https://[2606:4700:4700:0::1111]:8443/x", allow_http=False)
    assert v6.host == "2606:4700:4700::1111"
    assert v6.is_ip_literal is True
    assert v6.url == "https://[2606:4700:4700::1111]:8443/x"


def test_idna_host() -> None:
    parsed = parse_webhook_url("https://Bücher.example/hook", allow_http=False)
    assert parsed.host == "xn--bcher-kva.example"
    assert parsed.url == "https://xn--bcher-kva.example/hook"
    assert parsed.host.isascii()


def test_idna_mapping_to_ascii_is_checked_like_ascii() -> None:
    # Full-width characters map to ASCII under IDNA: the result is what gets checked.
    loopback = parse_webhook_url(f"https://{fullwidth('127.0.0.1')}/", allow_http=False)
    assert (loopback.host, loopback.is_ip_literal) == ("127.0.0.1", True)
    name = parse_webhook_url(f"https://{fullwidth('localhost')}/", allow_http=False)
    assert name.host == "localhost"


REFUSED_SHAPES = {
    "http without allow_http": "http://example.com/",
    "ftp": "ftp://example.com/",
    "javascript": "javascript:alert(1)",
    "file": "file:///etc/passwd",
    "no scheme": "example.com/hook",
    "scheme-relative": "//example.com/hook",
    "empty": "",
    "user": "https://user@example.com/",
    "user and password": "https://user:pass@example.com/",
    "empty user info": "https://@example.com/",
    "at in password": "https://a:b@c@example.com/",
    "fragment": "https://example.com/hook#part",
    "empty fragment": "https://example.com/hook#",
    "too long": "https://example.com/" + "a" * (MAX_URL_LENGTH - 19),
    "missing host": "https:///path",
    "no authority": "https:example.com",
    "one slash": "https:/example.com/",
    "only scheme": "https://",
    "port only": "https://:443/",
    "port too big": "https://example.com:99999/",
    "port zero": "https://example.com:0/",
    "port 65536": "https://example.com:65536/",
    "port not a number": "https://example.com:https/",
    "negative port": "https://example.com:-1/",
    "empty port": "https://example.com:/",
    "non-ascii digit port": "https://example.com:٤٤٣/",
    "two ports": "https://example.com:443:443/",
    "space in host": "https://exa mple.com/",
    "space in path": "https://example.com/a b",
    "leading space": " https://example.com/",
    "trailing space": "https://example.com/ ",
    "tab": "https://exam\tple.com/",
    "newline": "https://example.com/\nHost: evil",
    "carriage return": "https://example.com/\r",
    "nul": "https://example.com/\x00",
    "delete": "https://example.com/\x7f",
    "no-break space": "https://example.com/\u00a0",
    "zero width space": "https://example.com\u200b/",
    "backslash userinfo trick": "https://evil.com\\@good.com/",
    "backslash in host": "https://evil.com\\good.com/",
    "backslash in path": "https://example.com/a\\b",
    "unclosed bracket": "https://[::1",
    "unopened bracket": "https://::1]/",
    "junk after bracket": "https://[::1]x/",
    "ipv4 in brackets": "https://[127.0.0.1]/",
    "ipvfuture": "https://[v1.fe]/",
    "zone id": "https://[fe80::1%25eth0]/",
    "percent-encoded host": "https://%65xample.com/",
    "percent-encoded dot": "https://example%2ecom/",
    "short ipv4": "https://127.1/",
    "decimal ipv4": "https://2130706433/",
    "hex ipv4": "https://0x7f.0.0.1/",
    "hex ipv4 whole": "https://0x7f000001/",
    "octal ipv4": "https://0177.0.0.1/",
    "ipv4 out of range": "https://256.1.1.1/",
    "numeric last label": "https://example.123/",
    "empty label": "https://a..example.com/",
    "leading dot": "https://.example.com/",
    "bad character": "https://ex*ample.com/",
    "quote": "https://ex'ample.com/",
    "label too long": "https://" + "a" * 64 + ".com/",
    "name too long": "https://" + ".".join(["a" * 63] * 4) + ".com/",
    "idna cannot encode": "https://" + "ü" * 70 + ".com/",
}


@pytest.mark.parametrize("url", REFUSED_SHAPES.values(), ids=REFUSED_SHAPES.keys())
def test_refused_shapes(url: str) -> None:
    with pytest.raises(UrlNotAllowed) as caught:
        parse_webhook_url(url, allow_http=False)
    assert isinstance(caught.value, ValueError)
    assert caught.value.reason
    assert str(caught.value) == caught.value.reason


def test_length_limit_is_inclusive() -> None:
    base = "https://example.com/"
    assert len(
        parse_webhook_url(base + "a" * (MAX_URL_LENGTH - len(base)), allow_http=False).url
    ) == (MAX_URL_LENGTH)
    with pytest.raises(UrlNotAllowed):
        parse_webhook_url(base + "a" * (MAX_URL_LENGTH - len(base) + 1), allow_http=False)


def test_percent_encoding_may_not_grow_past_the_limit() -> None:
    url = "https://example.com/" + "ü" * 1000  # 1020 characters, 6020 once encoded
    with pytest.raises(UrlNotAllowed):
        parse_webhook_url(url, allow_http=False)


def test_at_sign_in_path_or_query_is_fine() -> None:
    parsed = parse_webhook_url("https://example.com/users/@me?by=a@b", allow_http=False)
    assert parsed.host == "example.com"
    assert parsed.target == "/users/@me?by=a@b"


# --- the check at creation and update -------------------------------------------------


async def check(url: str, resolver: Resolver, **kwargs: bool) -> WebhookUrl:
    options = {"allow_http": False, "allow_private": False} | kwargs
    return await check_webhook_url(url, resolver=resolver, **options)


async def test_public_name_is_accepted() -> None:
    resolver = FakeResolver({"hooks.example.com": ["93.184.215.14", "2606:2800:21f:cb07::1"]})
    parsed = await check("https://hooks.example.com:8443/in", resolver)
    assert parsed.url == "https://hooks.example.com:8443/in"
    assert resolver.calls == [("hooks.example.com", 8443)]


async def test_name_that_does_not_resolve_is_accepted() -> None:
    resolver = FakeResolver({})
    parsed = await check("https://not-yet.example.com/in", resolver)
    assert parsed.host == "not-yet.example.com"
    assert resolver.calls == [("not-yet.example.com", 443)]


async def test_resolver_oserror_counts_as_not_resolving() -> None:
    async def broken(host: str, port: int) -> list[str]:
        raise OSError("resolver unavailable")

    assert (await check("https://example.com/", broken)).host == "example.com"


async def test_a_hanging_resolver_counts_as_not_resolving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(addresses_module, "LOOKUP_TIMEOUT_SECONDS", 0.1)

    async def hangs(host: str, port: int) -> list[str]:
        await asyncio.sleep(60)
        return ["127.0.0.1"]

    assert (await check("https://slow.example.com/", hangs)).host == "slow.example.com"


@pytest.mark.parametrize("addresses", [["127.0.0.1"], ["::1"], ["10.1.2.3"], ["169.254.169.254"]])
async def test_name_resolving_to_a_refused_address_is_refused(addresses: list[str]) -> None:
    resolver = FakeResolver({"internal.example.com": addresses})
    with pytest.raises(UrlNotAllowed) as caught:
        await check("https://internal.example.com/", resolver)
    # The reason does not reveal what the name resolved to.
    assert addresses[0] not in caught.value.reason


async def test_one_refused_address_among_public_ones_is_enough() -> None:
    resolver = FakeResolver({"mixed.example.com": ["93.184.215.14", "192.168.1.10"]})
    with pytest.raises(UrlNotAllowed):
        await check("https://mixed.example.com/", resolver)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/",
        "https://[::1]/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/",
        "https://[::ffff:127.0.0.1]/",
        "https://100.64.0.1/",
        "https://0.0.0.0/",
        "https://224.0.0.1/",
        f"https://{fullwidth('127.0.0.1')}/",
    ],
)
async def test_refused_ip_literals(url: str) -> None:
    resolver = FakeResolver({})
    with pytest.raises(UrlNotAllowed):
        await check(url, resolver)
    assert resolver.calls == []  # literals are never looked up


async def test_public_ip_literal_is_accepted_without_lookup() -> None:
    resolver = FakeResolver({})
    assert (await check("https://[2606:4700:4700::1111]/x", resolver)).is_ip_literal
    assert (await check("https://8.8.8.8/x", resolver)).host == "8.8.8.8"
    assert resolver.calls == []


@pytest.mark.parametrize(
    "url", ["https://localhost/", "https://LOCALHOST./", "https://foo.localhost:8443/x"]
)
async def test_localhost_names_are_refused_whatever_they_resolve_to(url: str) -> None:
    resolver = FakeResolver(
        {name: ["93.184.215.14"] for name in ("localhost", "localhost.", "foo.localhost")}
    )
    with pytest.raises(UrlNotAllowed):
        await check(url, resolver)
    assert resolver.calls == []


async def test_shape_rules_come_first() -> None:
    resolver = FakeResolver({"example.com": ["93.184.215.14"]})
    with pytest.raises(UrlNotAllowed):
        await check("http://example.com/", resolver)
    with pytest.raises(UrlNotAllowed):
        await check("https://u:p@example.com/", resolver)
    assert resolver.calls == []


async def test_allow_private_lifts_only_the_address_rule() -> None:
    resolver = FakeResolver({"db.internal": ["10.0.0.5"]})
    parsed = await check("http://127.0.0.1:8000/x", resolver, allow_http=True, allow_private=True)
    assert (parsed.url, parsed.port) == ("http://127.0.0.1:8000/x", 8000)
    assert (await check("https://localhost/", resolver, allow_private=True)).host == "localhost"
    assert (await check("https://db.internal/", resolver, allow_private=True)).host == "db.internal"
    assert resolver.calls == []  # not even resolved
    with pytest.raises(UrlNotAllowed):  # http still needs allow_http
        await check("http://127.0.0.1:8000/x", resolver, allow_private=True)
    with pytest.raises(UrlNotAllowed):
        await check("https://user@127.0.0.1/", resolver, allow_private=True)


async def test_default_resolver_refuses_local_names() -> None:
    with pytest.raises(UrlNotAllowed):
        await check_webhook_url("https://localhost/", allow_http=False, allow_private=False)
    with pytest.raises(UrlNotAllowed):
        await check_webhook_url("https://127.0.0.1/", allow_http=False, allow_private=False)


async def test_system_resolver() -> None:
    assert await system_resolver("127.0.0.1", 443) == ["127.0.0.1"]
    addresses = await system_resolver("localhost", 80)
    assert addresses
    assert len(addresses) == len(set(addresses))
    assert all(ipaddress.ip_address(a).is_loopback for a in addresses)
