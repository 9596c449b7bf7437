"""Secrets at rest: AES-256-GCM under HKDF-derived keys, bound to their owner."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from orgauth.security.encryption import DecryptionError, SecretBox, derive_key

MASTER = "a-master-key-for-tests-0123456789abcdef"


def test_sealed_values_open_for_their_owner_and_differ_each_time() -> None:
    box = SecretBox(MASTER, "webhook")
    first = box.seal("whsec_payload", owner="endpoint-1")
    second = box.seal("whsec_payload", owner="endpoint-1")
    assert first != second  # a fresh nonce each time
    assert first.startswith("v1.")
    assert "whsec_payload" not in first
    assert box.open(first, owner="endpoint-1") == "whsec_payload"
    assert box.open(second, owner="endpoint-1") == "whsec_payload"


def test_the_format_is_nonce_ciphertext_tag_under_the_derived_key() -> None:
    sealed = SecretBox(MASTER, "webhook").seal("secret", owner="owner-id")
    raw = base64.urlsafe_b64decode(sealed.removeprefix("v1.") + "==")
    nonce, rest = raw[:12], raw[12:]
    assert len(rest) == len("secret") + 16
    key = derive_key(MASTER, "webhook")
    assert AESGCM(key).decrypt(nonce, rest, b"owner-id") == b"secret"


@pytest.mark.parametrize(
    ("master", "purpose", "owner"),
    [
        ("another-master-key-0123456789abcdefgh", "webhook", "endpoint-1"),  # key changed
        (MASTER, "totp", "endpoint-1"),  # another purpose's key
        (MASTER, "webhook", "endpoint-2"),  # moved to another row
    ],
)
def test_another_key_purpose_or_owner_cannot_open_it(master: str, purpose: str, owner: str) -> None:
    sealed = SecretBox(MASTER, "webhook").seal("whsec_x", owner="endpoint-1")
    with pytest.raises(DecryptionError):
        SecretBox(master, purpose).open(sealed, owner=owner)


@pytest.mark.parametrize("stored", ["", "v1.", "v2.AAAA", "v1.not*base64", "v1." + "A" * 40])
def test_tampered_or_malformed_values_are_refused_cleanly(stored: str) -> None:
    with pytest.raises(DecryptionError):
        SecretBox(MASTER, "webhook").open(stored, owner="endpoint-1")


def test_flipping_any_byte_is_detected() -> None:
    box = SecretBox(MASTER, "webhook")
    sealed = box.seal("whsec_value", owner="o")
    raw = bytearray(base64.urlsafe_b64decode(sealed.removeprefix("v1.") + "=="))
    for index in range(len(raw)):
        changed = bytearray(raw)
        changed[index] ^= 0x01
        text = "v1." + base64.urlsafe_b64encode(bytes(changed)).decode().rstrip("=")
        with pytest.raises(DecryptionError):
            box.open(text, owner="o")


def test_the_key_never_shows_in_repr() -> None:
    assert MASTER not in repr(SecretBox(MASTER, "webhook"))
