"""User-Agent parsing for session device fields: recognised, bounded, cheap (docs/SECURITY.md)."""

from __future__ import annotations

import time

import pytest

from orgauth.models import (
    BROWSER_MAX_LENGTH,
    DEVICE_NAME_MAX_LENGTH,
    DEVICE_TYPE_MAX_LENGTH,
    OS_MAX_LENGTH,
    USER_AGENT_MAX_LENGTH,
)
from orgauth.security.devices import (
    PARSE_MAX_LENGTH,
    UNKNOWN_DEVICE,
    DeviceInfo,
    clear_cache,
    parse_user_agent,
)

CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
SAFARI_IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
CHROME_ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"
)
CHROME_ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
EDGE_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        (
            CHROME_MAC,
            DeviceInfo("Chrome on macOS", "desktop", "Chrome 124", "macOS 10.15", CHROME_MAC),
        ),
        (
            SAFARI_IPHONE,
            DeviceInfo("Safari on iPhone", "mobile", "Safari 17", "iOS 17.4", SAFARI_IPHONE),
        ),
        (
            SAFARI_IPAD,
            DeviceInfo("Safari on iPad", "tablet", "Safari 17", "iOS 17.4", SAFARI_IPAD),
        ),
        (
            CHROME_ANDROID_PHONE,
            DeviceInfo(
                "Chrome on Android", "mobile", "Chrome 124", "Android 14", CHROME_ANDROID_PHONE
            ),
        ),
        (
            CHROME_ANDROID_TABLET,
            DeviceInfo(
                "Chrome on Android", "tablet", "Chrome 124", "Android 13", CHROME_ANDROID_TABLET
            ),
        ),
        (
            EDGE_WINDOWS,
            DeviceInfo("Edge on Windows", "desktop", "Edge 124", "Windows 10", EDGE_WINDOWS),
        ),
        (
            FIREFOX_LINUX,
            DeviceInfo("Firefox on Ubuntu", "desktop", "Firefox 125", "Ubuntu", FIREFOX_LINUX),
        ),
        (GOOGLEBOT, DeviceInfo("Googlebot", "bot", "Googlebot 2", None, GOOGLEBOT)),
        ("curl/8.5.0", DeviceInfo("curl", "unknown", "curl 8", None, "curl/8.5.0")),
        ("testclient", DeviceInfo(None, "unknown", None, None, "testclient")),
    ],
)
def test_common_user_agents_are_described(user_agent: str, expected: DeviceInfo) -> None:
    assert parse_user_agent(user_agent) == expected


@pytest.mark.parametrize("user_agent", [None, "", "   ", "\x00\x01\x7f", "\u200b\u202e"])
def test_missing_or_empty_user_agent_is_unknown(user_agent: str | None) -> None:
    assert parse_user_agent(user_agent) == UNKNOWN_DEVICE
    assert UNKNOWN_DEVICE.device_type == "unknown"


def test_control_and_format_characters_are_stripped() -> None:
    info = parse_user_agent("Mozilla/5.0\x00 (Windows NT 10.0;\tWin64)\r\n\u202eEvil\x1b[31m")
    assert info.user_agent == "Mozilla/5.0 (Windows NT 10.0; Win64) Evil[31m"
    assert info.os == "Windows 10"
    for value in (info.device_name, info.browser, info.os, info.user_agent):
        assert value is None or value.isprintable()


def test_lone_surrogates_never_reach_the_result() -> None:
    info = parse_user_agent("Mozilla/5.0 \ud800(X11; Linux x86_64)")
    assert info.user_agent is not None
    info.user_agent.encode("utf-8")  # storable: no surrogate left


def _assert_bounded(info: DeviceInfo) -> None:
    assert info.device_name is None or len(info.device_name) <= DEVICE_NAME_MAX_LENGTH
    assert len(info.device_type) <= DEVICE_TYPE_MAX_LENGTH
    assert info.browser is None or len(info.browser) <= BROWSER_MAX_LENGTH
    assert info.os is None or len(info.os) <= OS_MAX_LENGTH
    assert info.user_agent is None or len(info.user_agent) <= USER_AGENT_MAX_LENGTH


@pytest.mark.parametrize(
    "user_agent",
    [
        "A" * 10_000,
        CHROME_MAC + " " + "x" * 10_000,
        "Mozilla/5.0 (" + "; " * 5_000 + ")",
        # A browser "family" captured from the header can be as long as the header.
        "Mozilla/5.0 (compatible; " + "B" * 400 + "bot/1.0)",
        "Mozilla/5.0 (Windows NT 10.0) " + "Chrome/" + "1" * 300 + ".0",
        "\x00" * 10_000,
        "é🙂" * 5_000,
    ],
)
def test_every_field_fits_its_column(user_agent: str) -> None:
    _assert_bounded(parse_user_agent(user_agent))


def test_huge_user_agent_is_cut_before_parsing_and_stays_cheap() -> None:
    clear_cache()
    huge = CHROME_MAC + " " + ";(" * 5_000  # about 10 KB of regex-unfriendly noise
    started = time.perf_counter()
    info = parse_user_agent(huge)
    elapsed = time.perf_counter() - started
    assert info.device_name == "Chrome on macOS"
    assert info.user_agent == huge[:USER_AGENT_MAX_LENGTH]
    # Parsing only the first PARSE_MAX_LENGTH characters costs a few ms at most; the
    # bound is generous so a slow CI machine does not flake.
    assert elapsed < 0.5
    # Whatever follows the cut cannot change the answer.
    assert parse_user_agent(huge[:PARSE_MAX_LENGTH] + "garbage" * 1000) == info


def test_results_are_cached() -> None:
    clear_cache()
    first = parse_user_agent(CHROME_MAC)
    assert parse_user_agent(CHROME_MAC) is first


def test_parsing_is_fast() -> None:
    clear_cache()
    parse_user_agent(CHROME_MAC)  # loads the rules once
    uncached = [f"{CHROME_MAC} build/{i}" for i in range(50)]
    started = time.perf_counter()
    for user_agent in uncached:
        parse_user_agent(user_agent)
    per_uncached = (time.perf_counter() - started) / len(uncached)
    started = time.perf_counter()
    for _ in range(10):
        for user_agent in uncached:
            parse_user_agent(user_agent)
    per_cached = (time.perf_counter() - started) / (10 * len(uncached))
    # Measured about 1 ms uncached and under 1 µs cached; the bounds leave ample slack.
    assert per_uncached < 0.05
    assert per_cached < 0.0005
