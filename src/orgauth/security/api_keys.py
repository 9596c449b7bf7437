"""Organization API keys: ``oa_live_`` + 43 random base-62 characters + a 6-character
CRC-32 checksum (docs/SECURITY.md, "API key format").

The checksum lets a secret scanner, or orgauth itself before any database lookup,
recognise a real key; it is not a secret and adds no strength. Only the SHA-256 of the
whole key and its first 12 characters are stored.
"""

from __future__ import annotations

import re
import secrets
import zlib

from orgauth.security.tokens import hash_token

PREFIX = "oa_live_"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LENGTH = 43  # 62**43 > 2**256
CHECKSUM_LENGTH = 6
KEY_LENGTH = len(PREFIX) + RANDOM_LENGTH + CHECKSUM_LENGTH  # 57
START_LENGTH = 12
KEY_PATTERN = re.compile(rf"^{PREFIX}[0-9A-Za-z]{{{RANDOM_LENGTH + CHECKSUM_LENGTH}}}$")


def _base62(value: int, width: int) -> str:
    digits = []
    while value:
        value, digit = divmod(value, len(ALPHABET))
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits)).rjust(width, "0")


def checksum(random_part: str) -> str:
    """CRC-32 (unsigned) of ``random_part``'s ASCII bytes in base 62, 6 digits."""
    return _base62(zlib.crc32(random_part.encode("ascii")), CHECKSUM_LENGTH)


def new_api_key() -> str:
    """A fresh key: 256 bits from ``secrets``, drawn uniformly from the alphabet."""
    random_part = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    return PREFIX + random_part + checksum(random_part)


def is_well_formed(key: str) -> bool:
    """Whether ``key`` has the format and a matching checksum (no database needed)."""
    if len(key) != KEY_LENGTH or not KEY_PATTERN.match(key):
        return False
    body = key[len(PREFIX) :]
    return secrets.compare_digest(checksum(body[:RANDOM_LENGTH]), body[RANDOM_LENGTH:])


def api_key_hash(key: str) -> str:
    """The stored lookup value: SHA-256 hex of the whole key."""
    return hash_token(key)


def key_start(key: str) -> str:
    """The first 12 characters, shown in lists so people can tell their keys apart."""
    return key[:START_LENGTH]
