"""The API key format: prefix, 43 random base-62 characters, a CRC-32 checksum that a
scanner can verify without the database."""

from __future__ import annotations

import hashlib
import re
import zlib

import pytest

from orgauth.security.api_keys import (
    ALPHABET,
    api_key_hash,
    checksum,
    is_well_formed,
    key_start,
    new_api_key,
)

SCANNER_PATTERN = re.compile(r"^oa_live_[0-9A-Za-z]{49}$")


def _scanner_checksum(random_part: str) -> str:
    """The check as docs/SECURITY.md describes it for secret scanners, written apart."""
    value = zlib.crc32(random_part.encode()) & 0xFFFFFFFF
    out = ""
    for _ in range(6):
        value, digit = divmod(value, 62)
        out = ALPHABET[digit] + out
    return out


def test_new_keys_match_the_documented_format_and_checksum() -> None:
    keys = {new_api_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert SCANNER_PATTERN.match(key)
        assert len(key) == 57
        assert _scanner_checksum(key[8:51]) == key[51:]
        assert is_well_formed(key)


def test_the_random_part_uses_the_whole_alphabet() -> None:
    seen = set("".join(new_api_key()[8:51] for _ in range(300)))
    assert seen == set(ALPHABET)


def test_checksum_is_left_padded_base62() -> None:
    assert checksum("") == "000000"  # crc32 of nothing is 0
    assert len(checksum("a")) == 6


def test_a_key_with_a_valid_prefix_and_a_wrong_checksum_is_refused() -> None:
    key = new_api_key()
    last = key[-1]
    forged = key[:-1] + ("0" if last != "0" else "1")
    assert not is_well_formed(forged)
    # Changing one random character breaks the checksum too.
    body = key[8:51]
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    assert not is_well_formed("oa_live_" + flipped + key[51:])


@pytest.mark.parametrize(
    "candidate",
    [
        "",
        "oa_live_",
        "oa_test_" + "A" * 49,
        "OA_LIVE_" + "A" * 49,
        "oa_rt_" + "A" * 51,
    ],
)
def test_other_strings_are_not_keys(candidate: str) -> None:
    assert not is_well_formed(candidate)


def test_truncated_padded_or_decorated_keys_are_refused() -> None:
    key = new_api_key()
    for candidate in (
        key[:-1],
        key + "0",
        " " + key,
        key + "\n",
        key.replace("oa_live_", "oa-live-"),
        key + "=",
        key.upper(),
    ):
        assert not is_well_formed(candidate), candidate


def test_only_a_hash_and_the_start_are_kept() -> None:
    key = new_api_key()
    assert api_key_hash(key) == hashlib.sha256(key.encode()).hexdigest()
    assert key_start(key) == key[:12]
    assert key_start(key).startswith("oa_live_")
