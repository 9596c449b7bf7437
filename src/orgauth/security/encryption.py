"""Secrets at rest: AES-256-GCM under a key derived per purpose (docs/SECURITY.md,
"Secrets at rest").

The key is HKDF-SHA256 of ``ENCRYPTION_KEY`` (else the ``SECRET_KEY`` in force) with salt
``orgauth`` and info ``orgauth:<purpose>:v1``, so a webhook secret and a TOTP secret never
share a key. The associated data binds each ciphertext to the row that owns it: a value
copied into another row does not decrypt there.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = "v1."
_NONCE_BYTES = 12


class DecryptionError(ValueError):
    """The stored value was not sealed by this key for this owner (the key changed, or
    the value was tampered with or moved)."""


def derive_key(master: str, purpose: str) -> bytes:
    """The 32-byte key of ``purpose`` (``webhook``, ``totp``, ``oauth-cookie``)."""
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"orgauth",
        info=f"orgauth:{purpose}:v1".encode(),
    ).derive(master.encode())


class SecretBox:
    """Seal and open secrets of one purpose; ``owner`` is the owning row's id."""

    def __init__(self, master: str, purpose: str) -> None:
        self._aead = AESGCM(derive_key(master, purpose))

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    def seal(self, plaintext: str, *, owner: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), owner.encode())
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def open(self, stored: str, *, owner: str) -> str:
        if not stored.startswith(_VERSION):
            raise DecryptionError("unknown encryption format")
        body = stored[len(_VERSION) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            plaintext = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], owner.encode())
        except (InvalidTag, binascii.Error, ValueError):
            raise DecryptionError("the secret cannot be decrypted with the key in force") from None
        return plaintext.decode()
