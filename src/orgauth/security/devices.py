"""Describe a session's device from its User-Agent header (docs/SECURITY.md).

Parsing uses the maintained ``ua-parser`` rules. Everything here is bounded: the input is
cut to :data:`PARSE_MAX_LENGTH` characters before any regular expression sees it, control
and format characters are removed, and every output field fits its column in
:mod:`orgauth.models`. Results are cached because the same few User-Agents log in again and
again.

``device_type`` is one of ``desktop``, ``mobile``, ``tablet``, ``bot`` or ``unknown``,
decided in that order of evidence:

* ``bot``: ua-parser classifies the device as a spider (Googlebot, bingbot, GPTBot, ...);
* ``tablet``: an iPad, a Kindle, a device whose family or brand says tablet, or Android
  without the ``Mobile`` token (the convention Android browsers follow for tablets);
* ``mobile``: a mobile OS (iOS, Android, Windows Phone, ...), an iPhone/iPod, or the
  ``Mobi`` token that mobile browsers send;
* ``desktop``: any other recognised operating system;
* ``unknown``: nothing recognised (scripts such as curl, empty or missing header).

An iPad in "desktop site" mode sends a macOS User-Agent and is reported as desktop: the
header simply does not say otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

import ua_parser

from orgauth.lengths import (
    BROWSER_MAX_LENGTH,
    DEVICE_NAME_MAX_LENGTH,
    DEVICE_TYPE_MAX_LENGTH,
    OS_MAX_LENGTH,
    USER_AGENT_MAX_LENGTH,
)

DeviceType = Literal["desktop", "mobile", "tablet", "bot", "unknown"]

#: Longest prefix of a User-Agent that is parsed. Real headers are well under this; parse
#: time grows with length, so the cut bounds the cost of a hostile 10 KB header.
PARSE_MAX_LENGTH: Final = 1024
#: Distinct (cut) User-Agents whose results are kept.
CACHE_SIZE: Final = 1024

_MOBILE_OS: Final = frozenset(
    {
        "iOS",
        "Android",
        "Windows Phone",
        "Windows Mobile",
        "BlackBerry OS",
        "BlackBerry Tablet OS",
        "KaiOS",
        "Firefox OS",
        "Symbian OS",
        "Symbian^3",
        "Tizen",
        "webOS",
        "Sailfish",
        "HarmonyOS",
    }
)
_APPLE_HANDHELDS: Final = frozenset({"iPhone", "iPad", "iPod"})
_TABLET_FAMILIES: Final = ("ipad", "tablet", "kindle", "galaxy tab", "playbook", "xoom")
# Mobile variants of a browser are the same browser to a user reading their session list;
# device_type already says "mobile".
_BROWSER_NAMES: Final = {
    "Mobile Safari": "Safari",
    "Chrome Mobile": "Chrome",
    "Chrome Mobile iOS": "Chrome",
    "Firefox Mobile": "Firefox",
    "Firefox iOS": "Firefox",
    "Edge Mobile": "Edge",
    "Opera Mobile": "Opera",
}
_OS_NAMES: Final = {"Mac OS X": "macOS", "Chrome OS": "ChromeOS"}
# What ua-parser answers when it recognised nothing.
_UNRECOGNISED: Final = "Other"


@dataclass(frozen=True)
class DeviceInfo:
    """What a session shows about its device; every field fits its database column."""

    device_name: str | None
    device_type: str
    browser: str | None
    os: str | None
    user_agent: str | None


UNKNOWN_DEVICE: Final = DeviceInfo(
    device_name=None, device_type="unknown", browser=None, os=None, user_agent=None
)


def parse_user_agent(user_agent: str | None) -> DeviceInfo:
    """Describe the device behind ``user_agent``; never raises, whatever the input.

    ``user_agent`` in the result is the cleaned header, cut to the stored length.
    """
    if not user_agent:
        return UNKNOWN_DEVICE
    # Cut before anything else so that cleaning, caching and parsing are all bounded.
    return _parse_cached(user_agent[:PARSE_MAX_LENGTH])


def clean_user_agent(user_agent: str) -> str:
    """Drop control/format characters and squeeze whitespace (keeps logs and UIs sane)."""
    if not user_agent.isprintable():
        user_agent = "".join(_clean_char(char) for char in user_agent)
    return " ".join(user_agent.split())


def _clean_char(char: str) -> str:
    if char.isprintable():
        return char
    # Tabs, newlines and exotic spaces separate tokens; NUL, bidi overrides, zero-width
    # characters and lone surrogates carry nothing and could spoof what a user sees.
    return " " if char.isspace() else ""


@lru_cache(maxsize=CACHE_SIZE)
def _parse_cached(user_agent: str) -> DeviceInfo:
    cleaned = clean_user_agent(user_agent)
    if not cleaned:
        return UNKNOWN_DEVICE
    try:
        result = ua_parser.parse(cleaned)
    except Exception:  # a parser bug must not fail a login
        result = ua_parser.Result(user_agent=None, os=None, device=None, string=cleaned)
    return _describe(cleaned, result)


def _describe(cleaned: str, result: ua_parser.Result) -> DeviceInfo:
    agent = result.user_agent
    os_info = result.os
    device = result.device
    browser_family = _family(agent.family if agent else None, _BROWSER_NAMES)
    os_family = _family(os_info.family if os_info else None, _OS_NAMES)
    device_family = _family(device.family if device else None, {})

    device_type = _device_type(cleaned, os_family, device_family, device)
    if device_type == "bot":
        target = None  # "Googlebot on Other" says nothing; the crawler's name is enough
    elif device_family in _APPLE_HANDHELDS:
        target = device_family
    else:
        target = os_family
    if browser_family and target:
        device_name: str | None = f"{browser_family} on {target}"
    else:
        device_name = browser_family or target

    return DeviceInfo(
        device_name=_bounded(device_name, DEVICE_NAME_MAX_LENGTH),
        device_type=device_type[:DEVICE_TYPE_MAX_LENGTH],
        # Browsers update every few weeks: the major version is what a user recognises.
        browser=_bounded(_with_version(browser_family, agent, parts=1), BROWSER_MAX_LENGTH),
        os=_bounded(_with_version(os_family, os_info, parts=2), OS_MAX_LENGTH),
        user_agent=cleaned[:USER_AGENT_MAX_LENGTH],
    )


def _device_type(
    cleaned: str, os_family: str | None, device_family: str | None, device: ua_parser.Device | None
) -> DeviceType:
    if device_family == "Spider":
        return "bot"
    lowered_family = (device_family or "").lower()
    brand = (device.brand or "") if device else ""
    if (
        any(marker in lowered_family for marker in _TABLET_FAMILIES)
        or "tablet" in brand.lower()
        or (os_family == "Android" and "Mobile" not in cleaned)
    ):
        return "tablet"
    if os_family in _MOBILE_OS or device_family in _APPLE_HANDHELDS or "Mobi" in cleaned:
        return "mobile"
    if os_family:
        return "desktop"
    return "unknown"


def _family(family: str | None, names: dict[str, str]) -> str | None:
    if not family or family == _UNRECOGNISED:
        return None
    return names.get(family, family)


def _with_version(
    name: str | None, parsed: ua_parser.UserAgent | ua_parser.OS | None, *, parts: int
) -> str | None:
    if not name or parsed is None:
        return name
    version: list[str] = []
    for part in (parsed.major, parsed.minor)[:parts]:
        if not part:
            break
        version.append(part)
    return f"{name} {'.'.join(version)}" if version else name


def _bounded(value: str | None, limit: int) -> str | None:
    if not value:
        return None
    # The parser copies substrings of the header into its results; clean them again so a
    # stray character in a captured group cannot slip through.
    return clean_user_agent(value)[:limit] or None


def clear_cache() -> None:
    """Forget cached results (for tests and benchmarks)."""
    _parse_cached.cache_clear()


__all__ = [
    "CACHE_SIZE",
    "PARSE_MAX_LENGTH",
    "UNKNOWN_DEVICE",
    "DeviceInfo",
    "DeviceType",
    "clean_user_agent",
    "clear_cache",
    "parse_user_agent",
]
