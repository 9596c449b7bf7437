"""Access tokens (JWT) and opaque tokens (refresh, reset, email verification, invitations;
stored hashed).

Access tokens are HS256 JWTs with header ``typ: at+jwt`` and exactly the claims
``iss aud sub sid jti iat exp`` (no personal data). Opaque tokens are the prefix of their
kind plus 256 random bits, looked up only by their SHA-256 hash; a value with another
prefix is unknown, so no kind can ever be mistaken for an access token or for another.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt

ACCESS_TOKEN_TYPE = "at+jwt"
ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("iss", "aud", "sub", "sid", "jti", "iat", "exp")
DEFAULT_LEEWAY_SECONDS = 10
MAX_ACCESS_TOKEN_LENGTH = 2048
REFRESH_TOKEN_PREFIX = "oa_rt_"
RESET_TOKEN_PREFIX = "oa_pr_"
VERIFICATION_TOKEN_PREFIX = "oa_ev_"
INVITATION_TOKEN_PREFIX = "oa_inv_"
REFRESH_TOKEN_BYTES = 32  # 256 bits
RESET_TOKEN_BYTES = 32  # 256 bits (at least 128 are needed)
OPAQUE_TOKEN_BYTES = 32  # 256 bits, every opaque kind (docs/SECURITY.md)
MAX_OPAQUE_TOKEN_LENGTH = 256
VERIFIED_CACHE_SIZE = 10_000


class InvalidTokenError(Exception):
    """The token is malformed, forged, expired or of the wrong type."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """The verified content of an access token."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    token_id: str
    issued_at: int
    expires_at: int


class AccessTokenCodec:
    """Issues and verifies access tokens for one key, issuer and audience."""

    def __init__(
        self,
        *,
        key: str,
        issuer: str,
        audience: str,
        lifetime_seconds: float,
        leeway_seconds: int = DEFAULT_LEEWAY_SECONDS,
    ) -> None:
        self._key = key
        self.issuer = issuer
        self.audience = audience
        self.lifetime_seconds = lifetime_seconds
        self._leeway = leeway_seconds
        # Verified tokens, so a client's repeated token costs a dict lookup, not an HMAC
        # and two JSON parses. Only tokens that passed full verification go in; expiry is
        # still checked on every use.
        self._verified: OrderedDict[str, AccessClaims] = OrderedDict()

    def issue(
        self, *, user_id: uuid.UUID, session_id: uuid.UUID, now: float | None = None
    ) -> tuple[str, int]:
        """Return ``(token, expires_in_seconds)``."""
        issued_at = int(now if now is not None else time.time())
        expires_in = max(1, int(self.lifetime_seconds))
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "sid": str(session_id),
            "jti": secrets.token_urlsafe(16),
            "iat": issued_at,
            "exp": issued_at + expires_in,
        }
        token = jwt.encode(payload, self._key, algorithm=ALGORITHM, headers={"typ": "at+jwt"})
        return token, expires_in

    def verify(self, token: str) -> AccessClaims:
        """Verify signature, type, algorithm, issuer, audience, expiry and claim shapes."""
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires_at + self._leeway <= time.time():
                del self._verified[token]
                raise InvalidTokenError("ExpiredSignatureError")
            self._verified.move_to_end(token)
            return cached
        claims = self._verify_fully(token)
        self._verified[token] = claims
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims

    def _verify_fully(self, token: str) -> AccessClaims:
        if not token or len(token) > MAX_ACCESS_TOKEN_LENGTH or token.count(".") != 2:
            raise InvalidTokenError("malformed token")
        try:
            # One parse: signature, algorithm allow-list and claims; the header is checked
            # from the same verified result.
            decoded = jwt.decode_complete(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS), "strict_aud": True},
            )
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(type(exc).__name__) from None
        header = decoded["header"]
        if header.get("alg") != ALGORITHM or header.get("typ") != ACCESS_TOKEN_TYPE:
            raise InvalidTokenError("wrong token type or algorithm")
        payload: dict[str, Any] = decoded["payload"]
        return _claims(payload)


def _claims(payload: dict[str, Any]) -> AccessClaims:
    try:
        user_id = uuid.UUID(str(payload["sub"]))
        session_id = uuid.UUID(str(payload["sid"]))
        token_id = payload["jti"]
        issued_at = payload["iat"]
        expires_at = payload["exp"]
    except (KeyError, ValueError, TypeError):
        raise InvalidTokenError("invalid claims") from None
    if not isinstance(token_id, str) or not token_id or len(token_id) > 64:
        raise InvalidTokenError("invalid jti")
    if not isinstance(issued_at, int) or not isinstance(expires_at, int):
        raise InvalidTokenError("invalid timestamps")
    return AccessClaims(user_id, session_id, token_id, issued_at, expires_at)


def hash_token(token: str) -> str:
    """SHA-256 hex digest: what the database stores instead of an opaque token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_refresh_token() -> str:
    """A fresh 256-bit refresh token."""
    return REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(REFRESH_TOKEN_BYTES)


def new_reset_token() -> str:
    """A fresh 256-bit single-use password reset token."""
    return RESET_TOKEN_PREFIX + secrets.token_urlsafe(RESET_TOKEN_BYTES)


def new_verification_token() -> str:
    """A fresh 256-bit single-use email verification token (``oa_ev_``)."""
    return new_opaque_token(VERIFICATION_TOKEN_PREFIX)


def new_opaque_token(prefix: str) -> str:
    """``prefix`` + base64url (no padding) of 32 random bytes."""
    return prefix + secrets.token_urlsafe(OPAQUE_TOKEN_BYTES)


def opaque_token_hash(token: str, prefix: str) -> str | None:
    """Hash of a well-formed token of the kind ``prefix``, or None for anything else."""
    if not token.startswith(prefix) or len(token) > MAX_OPAQUE_TOKEN_LENGTH:
        return None
    return hash_token(token)


def verification_token_hash(token: str) -> str | None:
    """Hash of a well-formed verification token, or None (a reset token, for instance)."""
    return opaque_token_hash(token, VERIFICATION_TOKEN_PREFIX)


def invitation_token_hash(token: str) -> str | None:
    """Hash of a well-formed invitation token (``oa_inv_``), or None for anything else."""
    return opaque_token_hash(token, INVITATION_TOKEN_PREFIX)


def refresh_token_hash(token: str) -> str | None:
    """Hash of a well-formed refresh token, or None for anything else (incl. reset tokens)."""
    return opaque_token_hash(token, REFRESH_TOKEN_PREFIX)


def reset_token_hash(token: str) -> str | None:
    """Hash of a well-formed reset token, or None for anything else (incl. refresh tokens)."""
    return opaque_token_hash(token, RESET_TOKEN_PREFIX)
