"""Property tests: token parsing never fails in an unexpected way and never accepts a
modified token."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orgauth.security.tokens import (
    AccessTokenCodec,
    InvalidTokenError,
    refresh_token_hash,
    reset_token_hash,
)

CODEC = AccessTokenCodec(
    key="property-test-key-0123456789abcdefghijklmnop",
    issuer="orgauth",
    audience="orgauth",
    lifetime_seconds=900,
)
TOKEN, _ = CODEC.issue(user_id=uuid.uuid4(), session_id=uuid.uuid4())
PROPERTY = settings(max_examples=300, deadline=None, database=None)


@PROPERTY
@given(st.text(max_size=3000))
def test_arbitrary_text_is_refused_cleanly(text: str) -> None:
    with pytest.raises(InvalidTokenError):
        CODEC.verify(text)


@PROPERTY
@given(
    st.lists(
        st.text(
            alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
            max_size=300,
        ),
        min_size=3,
        max_size=3,
    )
)
def test_jwt_shaped_garbage_is_refused_cleanly(parts: list[str]) -> None:
    with pytest.raises(InvalidTokenError):
        CODEC.verify(".".join(parts))


@PROPERTY
@given(st.integers(min_value=0, max_value=len(TOKEN) - 1), st.sampled_from("AQgw_-0z"))
def test_changing_any_character_of_a_valid_token_is_detected(index: int, char: str) -> None:
    if TOKEN[index] == char or TOKEN[index] == ".":
        return
    tampered = TOKEN[:index] + char + TOKEN[index + 1 :]
    try:
        claims = CODEC.verify(tampered)
    except InvalidTokenError:
        return
    # base64url's last character can carry unused bits: a change there may decode to the
    # same bytes, which is the same token, not a forgery.
    assert claims == CODEC.verify(TOKEN)


@PROPERTY
@given(st.text(max_size=600))
def test_opaque_token_hashing_accepts_only_its_own_prefix(text: str) -> None:
    refresh, reset = refresh_token_hash(text), reset_token_hash(text)
    assert refresh is None or text.startswith("oa_rt_")
    assert reset is None or text.startswith("oa_pr_")
    assert refresh is None or reset is None
