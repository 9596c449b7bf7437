"""Access, refresh and reset tokens: the codec alone, then forged tokens against the app.

docs/SECURITY.md: HS256 only, ``typ: at+jwt``, claims ``iss aud sub sid jti iat exp`` all required,
no personal data, accepted only from ``Authorization: Bearer``. §4.3/§4.4: refresh and
reset tokens are opaque, >= 256 / 128 bits, stored only hashed.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth.security.tokens import (
    ACCESS_TOKEN_TYPE,
    REFRESH_TOKEN_PREFIX,
    REQUIRED_CLAIMS,
    RESET_TOKEN_PREFIX,
    AccessTokenCodec,
    InvalidTokenError,
    hash_token,
    new_refresh_token,
    new_reset_token,
    refresh_token_hash,
    reset_token_hash,
)
from orgauth.settings import OrgAuthSettings

KEY = "unit-test-signing-key-0123456789abcdefghijklmnop"
ISSUER = "orgauth"
AUDIENCE = "orgauth"
API = "/api/v1"
PASSWORD = "Quartz-lantern-Orbit-71"
BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def sign(header: dict[str, Any], payload: dict[str, Any], key: str, digest: Any) -> str:
    """A JWT built by hand, so any header (alg, typ) can be forged."""
    signing_input = f"{b64json(header)}.{b64json(payload)}"
    signature = hmac.new(key.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


def unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{b64json(header)}.{b64json(payload)}."


def claims(**changes: Any) -> dict[str, Any]:
    """Valid claims; ``changes`` override them, a value of ``...`` removes the claim."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "jti": secrets.token_urlsafe(16),
        "iat": now,
        "exp": now + 900,
    }
    for name, value in changes.items():
        if value is ...:
            payload.pop(name, None)
        else:
            payload[name] = value
    return payload


HS256_HEADER = {"alg": "HS256", "typ": ACCESS_TOKEN_TYPE}


def hs256(payload: dict[str, Any], key: str = KEY, **header: Any) -> str:
    return sign({**HS256_HEADER, **header}, payload, key, hashlib.sha256)


@pytest.fixture
def codec() -> AccessTokenCodec:
    return AccessTokenCodec(key=KEY, issuer=ISSUER, audience=AUDIENCE, lifetime_seconds=900)


def forged_tokens(payload: dict[str, Any], key: str) -> dict[str, str]:
    """Tokens that must all be refused, built around otherwise valid ``payload`` claims."""
    now = int(time.time())
    tokens = {
        "alg none": unsigned({"alg": "none", "typ": ACCESS_TOKEN_TYPE}, payload),
        "alg None": unsigned({"alg": "None", "typ": ACCESS_TOKEN_TYPE}, payload),
        "alg NONE": unsigned({"alg": "NONE", "typ": ACCESS_TOKEN_TYPE}, payload),
        "alg nOnE": unsigned({"alg": "nOnE", "typ": ACCESS_TOKEN_TYPE}, payload),
        "alg none with signature": sign(
            {"alg": "none", "typ": ACCESS_TOKEN_TYPE}, payload, key, hashlib.sha256
        ),
        "alg HS384 right key": sign(
            {"alg": "HS384", "typ": ACCESS_TOKEN_TYPE}, payload, key, hashlib.sha384
        ),
        "alg HS512 right key": sign(
            {"alg": "HS512", "typ": ACCESS_TOKEN_TYPE}, payload, key, hashlib.sha512
        ),
        "alg RS256 signed with the HMAC key": sign(
            {"alg": "RS256", "typ": ACCESS_TOKEN_TYPE}, payload, key, hashlib.sha256
        ),
        "alg missing": sign({"typ": ACCESS_TOKEN_TYPE}, payload, key, hashlib.sha256),
        "wrong key": hs256(payload, key + "-not-quite"),
        "typ JWT": hs256(payload, key, typ="JWT"),
        "typ lower-case variant": hs256(payload, key, typ="AT+JWT"),
        "typ refresh": hs256(payload, key, typ="rt+jwt"),
        "typ missing": sign({"alg": "HS256"}, payload, key, hashlib.sha256),
        "wrong iss": hs256({**payload, "iss": "someone-else"}, key),
        "wrong aud": hs256({**payload, "aud": "another-api"}, key),
        "aud as list": hs256({**payload, "aud": [payload["aud"], "another-api"]}, key),
        "expired beyond leeway": hs256({**payload, "exp": now - 60, "iat": now - 960}, key),
        "issued in the future": hs256({**payload, "iat": now + 3600, "exp": now + 4500}, key),
        "non-uuid sub": hs256({**payload, "sub": "admin"}, key),
        "numeric sub": hs256({**payload, "sub": 1}, key),
        "non-uuid sid": hs256({**payload, "sid": "1 OR 1=1"}, key),
        "null sid": hs256({**payload, "sid": None}, key),
        "jti not a string": hs256({**payload, "jti": 12345}, key),
        "exp not a number": hs256({**payload, "exp": "tomorrow"}, key),
        "garbage": "garbage",
        "three dots of garbage": "a.b.c",
        "empty segments": "..",
        "ten kilobytes": "a" * 5_000 + "." + "b" * 5_000 + "." + "c" * 240,
        "json header not object": f"{b64url(b'[]')}.{b64json(payload)}.sig",
    }
    for name in REQUIRED_CLAIMS:
        tokens[f"missing {name}"] = hs256(claims_without(payload, name), key)
    valid = hs256(payload, key)
    head, body, signature = valid.split(".")
    tampered = dict(payload, sub=str(uuid.uuid4()))
    tokens["tampered sub, old signature"] = f"{head}.{b64json(tampered)}.{signature}"
    tokens["signature stripped"] = f"{head}.{body}."
    tokens["signature of another token"] = f"{head}.{body}.{hs256(claims(), key).split('.')[2]}"
    return tokens


def claims_without(payload: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in payload.items() if key != name}


# --- the codec alone ---------------------------------------------------------------


def test_issued_token_has_hs256_at_jwt_header_and_only_required_claims(
    codec: AccessTokenCodec,
) -> None:
    user_id, session_id = uuid.uuid4(), uuid.uuid4()

    token, expires_in = codec.issue(user_id=user_id, session_id=session_id)

    assert expires_in == 900
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "HS256", "typ": "at+jwt"}
    payload = jwt.decode(token, options={"verify_signature": False})
    assert set(payload) == set(REQUIRED_CLAIMS)
    assert payload["sub"] == str(user_id)
    assert payload["sid"] == str(session_id)
    assert payload["exp"] - payload["iat"] == 900
    verified = codec.verify(token)
    assert (verified.user_id, verified.session_id) == (user_id, session_id)


def test_each_issued_token_has_a_unique_jti(codec: AccessTokenCodec) -> None:
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    tokens = [codec.issue(user_id=user_id, session_id=session_id)[0] for _ in range(50)]

    jtis = {jwt.decode(t, options={"verify_signature": False})["jti"] for t in tokens}

    assert len(jtis) == 50


def test_valid_hand_built_token_is_accepted(codec: AccessTokenCodec) -> None:
    payload = claims()

    verified = codec.verify(hs256(payload))

    assert str(verified.user_id) == payload["sub"]


def test_token_expired_within_leeway_is_still_accepted(codec: AccessTokenCodec) -> None:
    now = int(time.time())

    codec.verify(hs256(claims(iat=now - 905, exp=now - 5)))


@pytest.mark.parametrize("name", sorted(forged_tokens(claims(), KEY)))
def test_codec_refuses_forged_token(codec: AccessTokenCodec, name: str) -> None:
    token = forged_tokens(claims(), KEY)[name]

    with pytest.raises(InvalidTokenError):
        codec.verify(token)


def test_codec_refuses_empty_token(codec: AccessTokenCodec) -> None:
    with pytest.raises(InvalidTokenError):
        codec.verify("")


def test_tokens_from_another_issuer_configuration_are_refused() -> None:
    ours = AccessTokenCodec(key=KEY, issuer="a", audience="a", lifetime_seconds=60)
    theirs = AccessTokenCodec(key=KEY, issuer="b", audience="b", lifetime_seconds=60)
    token, _ = theirs.issue(user_id=uuid.uuid4(), session_id=uuid.uuid4())

    with pytest.raises(InvalidTokenError):
        ours.verify(token)


@pytest.mark.parametrize(
    ("factory", "prefix", "min_bits"),
    [(new_refresh_token, REFRESH_TOKEN_PREFIX, 256), (new_reset_token, RESET_TOKEN_PREFIX, 128)],
)
def test_opaque_tokens_are_long_random_base64url(
    factory: Callable[[], str], prefix: str, min_bits: int
) -> None:
    tokens = [factory() for _ in range(200)]

    assert len(set(tokens)) == 200
    for token in tokens:
        assert token.startswith(prefix)
        secret = token.removeprefix(prefix)
        assert BASE64URL.match(secret)
        # base64url carries 6 bits per character.
        assert len(secret) * 6 >= min_bits
        assert len(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))) * 8 >= min_bits


def test_refresh_and_reset_tokens_cannot_stand_in_for_each_other() -> None:
    refresh_token, reset_token = new_refresh_token(), new_reset_token()

    assert refresh_token_hash(refresh_token) == hash_token(refresh_token)
    assert reset_token_hash(reset_token) == hash_token(reset_token)
    assert refresh_token_hash(reset_token) is None
    assert reset_token_hash(refresh_token) is None
    assert refresh_token_hash("oa_rt_" + "a" * 1000) is None


def test_token_hash_is_sha256_hex_and_not_the_token() -> None:
    token = new_refresh_token()

    digest = hash_token(token)

    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert token.removeprefix(REFRESH_TOKEN_PREFIX) not in digest


# --- through the app ---------------------------------------------------------------


async def sign_up_and_in(client: httpx.AsyncClient) -> dict[str, Any]:
    address = f"tok-{uuid.uuid4().hex[:10]}@example.com"
    registered = await client.post(
        f"{API}/auth/register",
        json={"email": address, "password": PASSWORD, "first_name": "Tess", "last_name": "Ok"},
    )
    assert registered.status_code == 201
    response = await client.post(f"{API}/auth/login", json={"email": address, "password": PASSWORD})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    body["email"] = address
    return body


async def get_me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"})


def assert_401(response: httpx.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == {
        "detail": {"code": code, "message": response.json()["detail"]["message"]}
    }
    assert response.headers["www-authenticate"] == "Bearer"


def real_claims(access_token: str) -> dict[str, Any]:
    payload: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
    return payload


async def test_access_token_payload_has_no_personal_data(client: httpx.AsyncClient) -> None:
    tokens = await sign_up_and_in(client)

    payload = real_claims(tokens["access_token"])

    assert set(payload) == {"iss", "aud", "sub", "sid", "jti", "iat", "exp"}
    serialized = json.dumps(payload)
    assert tokens["email"] not in serialized
    assert "Tess" not in serialized
    assert jwt.get_unverified_header(tokens["access_token"])["typ"] == "at+jwt"


async def test_forged_tokens_are_refused_by_the_api(
    client: httpx.AsyncClient, settings: OrgAuthSettings
) -> None:
    tokens = await sign_up_and_in(client)
    real = real_claims(tokens["access_token"])
    # Every forgery below names the real user and the real, live session: only the
    # defect under test stands between it and acceptance.
    payload = claims(sub=real["sub"], sid=real["sid"])
    payload["iss"], payload["aud"] = settings.jwt_issuer, settings.jwt_audience
    control = hs256(payload, settings.signing_key)
    assert (await get_me(client, control)).status_code == 200

    for name, token in forged_tokens(payload, settings.signing_key).items():
        response = await get_me(client, token)
        assert response.status_code == 401, name
        assert_401(response, "INVALID_TOKEN")


async def test_empty_bearer_token_is_not_authenticated(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/users/me", headers={"Authorization": "Bearer "})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_validly_signed_token_mixing_users_and_sessions_is_refused(
    client: httpx.AsyncClient, settings: OrgAuthSettings
) -> None:
    alice = real_claims((await sign_up_and_in(client))["access_token"])
    bob = real_claims((await sign_up_and_in(client))["access_token"])
    key = settings.signing_key

    alice_with_bobs_session = hs256({**alice, "sid": bob["sid"]}, key)
    bob_with_alices_session = hs256({**bob, "sid": alice["sid"]}, key)
    unknown_session = hs256({**alice, "sid": str(uuid.uuid4())}, key)
    unknown_user = hs256({**alice, "sub": str(uuid.uuid4())}, key)

    for token in (alice_with_bobs_session, bob_with_alices_session, unknown_session, unknown_user):
        assert_401(await get_me(client, token), "INVALID_TOKEN")


async def test_access_token_only_accepted_from_authorization_header(
    client: httpx.AsyncClient,
) -> None:
    token = (await sign_up_and_in(client))["access_token"]
    assert (await get_me(client, token)).status_code == 200

    in_query = await client.get(f"{API}/users/me", params={"access_token": token})
    in_token_query = await client.get(f"{API}/users/me", params={"token": token})
    in_cookie = await client.get(
        f"{API}/users/me",
        headers={"Cookie": f"access_token={token}; Authorization=Bearer%20{token}"},
    )
    other_header = await client.get(f"{API}/users/me", headers={"X-Access-Token": token})
    wrong_scheme = await client.get(f"{API}/users/me", headers={"Authorization": f"Token {token}"})
    bare = await client.get(f"{API}/users/me", headers={"Authorization": token})

    for response in (in_query, in_token_query, in_cookie, other_header, wrong_scheme, bare):
        assert_401(response, "NOT_AUTHENTICATED")


async def test_refresh_token_used_as_access_token_is_refused(client: httpx.AsyncClient) -> None:
    tokens = await sign_up_and_in(client)

    assert_401(await get_me(client, tokens["refresh_token"]), "INVALID_TOKEN")


async def test_access_token_used_as_refresh_token_is_refused(client: httpx.AsyncClient) -> None:
    tokens = await sign_up_and_in(client)

    response = await client.post(
        f"{API}/auth/refresh", json={"refresh_token": tokens["access_token"]}
    )

    assert_401(response, "INVALID_REFRESH_TOKEN")


async def test_token_signed_with_another_secret_key_is_refused(
    client: httpx.AsyncClient, settings: OrgAuthSettings
) -> None:
    real = real_claims((await sign_up_and_in(client))["access_token"])

    forged = jwt.encode(real, "x" * 48, algorithm="HS256", headers={"typ": "at+jwt"})

    assert_401(await get_me(client, forged), "INVALID_TOKEN")


async def test_refresh_token_has_at_least_256_bits(client: httpx.AsyncClient) -> None:
    tokens = await sign_up_and_in(client)
    refresh_token: str = tokens["refresh_token"]

    secret = refresh_token.removeprefix(REFRESH_TOKEN_PREFIX)

    assert refresh_token.startswith(REFRESH_TOKEN_PREFIX)
    assert BASE64URL.match(secret)
    assert len(secret) >= 43  # 43 base64url characters = 258 bits


async def all_cells(engine: AsyncEngine, table: str) -> list[str]:
    async with engine.connect() as connection:
        result = await connection.execute(text(f"SELECT * FROM {table}"))  # noqa: S608
        return [str(value) for row in result.all() for value in row]


async def test_raw_refresh_reset_and_verification_tokens_are_never_stored(
    client: httpx.AsyncClient, db: AsyncEngine, tmp_path: Path
) -> None:
    first = await sign_up_and_in(client)
    rotated = (
        await client.post(f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    await client.post(f"{API}/auth/password-reset/request", json={"email": first["email"]})
    emails = sorted((tmp_path / "emails").glob("*.eml"))
    assert len(emails) == 2  # the verification link sent at registration, the reset link
    bodies = []
    for path in emails:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        bodies.append(body.get_content())
    emailed = re.findall(r"token=(oa_(?:pr|ev)_[A-Za-z0-9_-]+)", "\n".join(bodies))
    assert sorted(token[:6] for token in emailed) == ["oa_ev_", "oa_pr_"]
    secrets_to_hide = {first["refresh_token"], rotated["refresh_token"], *emailed}
    cells: list[str] = []
    tables = ("refresh_tokens", "password_reset_tokens", "email_verification_tokens")
    for table in (*tables, "user_sessions", "users"):
        cells += await all_cells(db, table)

    assert cells
    for secret in secrets_to_hide:
        body = secret.split("_", 2)[2]
        assert all(body not in cell for cell in cells)
    hashes = set(cells)
    assert {hash_token(s) for s in secrets_to_hide} <= hashes
