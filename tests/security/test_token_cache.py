"""The verified-token cache never extends a token's life or accepts a forgery."""

from __future__ import annotations

import time
import uuid

import pytest

from orgauth.security import tokens
from orgauth.security.tokens import AccessTokenCodec, InvalidTokenError

KEY = "cache-test-key-0123456789abcdefghijklmnopqr"


def codec(lifetime: float = 60) -> AccessTokenCodec:
    return AccessTokenCodec(
        key=KEY, issuer="orgauth", audience="orgauth", lifetime_seconds=lifetime
    )


def test_cached_token_is_refused_once_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    subject = codec(lifetime=60)
    token, _ = subject.issue(user_id=uuid.uuid4(), session_id=uuid.uuid4())
    claims = subject.verify(token)  # now cached
    assert subject.verify(token) == claims
    later = time.time() + 60 + tokens.DEFAULT_LEEWAY_SECONDS + 1
    monkeypatch.setattr(tokens.time, "time", lambda: later)
    with pytest.raises(InvalidTokenError):
        subject.verify(token)
    assert token not in subject._verified


def test_cache_is_per_key() -> None:
    token, _ = codec().issue(user_id=uuid.uuid4(), session_id=uuid.uuid4())
    other = AccessTokenCodec(
        key="another-key-0123456789abcdefghijklmnopqrst",
        issuer="orgauth",
        audience="orgauth",
        lifetime_seconds=60,
    )
    codec().verify(token)
    with pytest.raises(InvalidTokenError):
        other.verify(token)


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "VERIFIED_CACHE_SIZE", 5)
    subject = codec()
    for _ in range(20):
        token, _ = subject.issue(user_id=uuid.uuid4(), session_id=uuid.uuid4())
        subject.verify(token)
    assert len(subject._verified) == 5
