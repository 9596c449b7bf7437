"""POST /auth/login and /auth/login/oauth (docs/API.md, docs/SECURITY.md)."""

from __future__ import annotations

import gc
import time
import uuid
from datetime import timedelta

import bcrypt
import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth.models import RefreshToken, User, UserSession, utcnow
from orgauth.security.passwords import hash_cost, verify_password_sync
from tests.support.http import (
    API,
    PASSWORD,
    TOKEN_KEYS,
    USER_KEYS,
    ClientFactory,
    UserFactory,
    assert_error,
    execute,
    fetch,
    insert_user,
    login,
    me,
    register,
    unique_email,
    unverified_claims,
)

LOGIN = f"{API}/auth/login"


def fullwidth(text: str) -> str:
    """The fullwidth forms (U+FF01..U+FF5E) of printable ASCII; NFKC maps them back."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


LOGIN_OAUTH = f"{API}/auth/login/oauth"


async def deactivate(engine: AsyncEngine, email_address: str) -> None:
    await execute(engine, update(User).where(User.email == email_address).values(is_active=False))


async def stored_hash(engine: AsyncEngine, email_address: str) -> str:
    rows = await fetch(engine, select(User.hashed_password).where(User.email == email_address))
    return str(rows[0][0])


async def test_login_returns_tokens_with_no_store(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    address = unique_email()
    user = await register(client, address)

    response = await login(client, address)

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == TOKEN_KEYS
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    assert set(body["user"]) == USER_KEYS
    assert body["user"] == user | {"updated_at": body["user"]["updated_at"]}
    assert PASSWORD not in response.text
    assert body["access_token"] != body["refresh_token"]
    assert (await me(client, body["access_token"])).json()["id"] == user["id"]


async def test_login_starts_a_session_with_bounded_lifetimes(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    address = unique_email()
    await register(client, address)
    before = utcnow()

    body = (await login(client, address)).json()

    session_id = uuid.UUID(unverified_claims(body["access_token"])["sid"])
    session = (await fetch(db, select(UserSession).where(UserSession.id == session_id)))[0]
    assert session.revoked_at is None
    assert before + timedelta(days=30) - timedelta(minutes=1) < session.expires_at
    assert session.expires_at <= utcnow() + timedelta(days=30)
    tokens = await fetch(db, select(RefreshToken).where(RefreshToken.session_id == session_id))
    assert len(tokens) == 1
    assert tokens[0].expires_at <= utcnow() + timedelta(days=7)
    assert tokens[0].expires_at > before + timedelta(days=7) - timedelta(minutes=1)
    last_login = (await fetch(db, select(User.last_login_at).where(User.email == address)))[0][0]
    assert last_login is not None
    assert last_login >= before - timedelta(seconds=1)


async def test_expires_in_follows_decimal_access_token_minutes(
    make_app: ClientFactory, db: AsyncEngine
) -> None:
    client = (await make_app(access_token_expire_minutes=0.5)).client
    address = unique_email()
    await register(client, address)

    body = (await login(client, address)).json()

    assert body["expires_in"] == 30
    claims = unverified_claims(body["access_token"])
    assert claims["exp"] - claims["iat"] == 30


@pytest.mark.parametrize("variant", [str.upper, str.title, lambda e: f"  {e}  "])
async def test_login_email_is_case_insensitive(
    client: httpx.AsyncClient, db: AsyncEngine, variant: object
) -> None:
    address = unique_email()
    await register(client, address)
    assert callable(variant)

    response = await login(client, variant(address))

    assert response.status_code == 200, response.text


async def test_login_failures_are_indistinguishable(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    known, inactive = unique_email(), unique_email()
    await register(client, known)
    await register(client, inactive)
    await deactivate(db, inactive)

    unknown_email = await login(client, unique_email())
    wrong_password = await login(client, known, "Wrong-Password-Guess-55")
    inactive_user = await login(client, inactive)
    malformed_email = await login(client, "not an email at all")

    for response in (unknown_email, wrong_password, inactive_user, malformed_email):
        assert_error(response, 401, "INVALID_CREDENTIALS")
        assert response.json() == unknown_email.json()
        assert response.headers["www-authenticate"] == "Bearer"
        assert "Wrong-Password" not in response.text
        assert PASSWORD not in response.text


async def test_inactive_user_cannot_log_in_even_with_right_password(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    address = unique_email()
    await register(client, address)
    await deactivate(db, address)

    assert_error(await login(client, address), 401, "INVALID_CREDENTIALS")
    assert (await fetch(db, select(UserSession))) == []


async def test_every_refused_login_costs_one_bcrypt_verification_at_the_configured_cost(
    make_app: ClientFactory, db: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why refused logins take the same time, checked without a clock: each path spends
    exactly one bcrypt verification, against a hash of the configured cost."""
    custom = await make_app(bcrypt_rounds=5)
    client = custom.client
    known, inactive = unique_email(), unique_email()
    await insert_user(db, known, rounds=5)
    await insert_user(db, inactive, rounds=5, is_active=False)
    costs: list[int] = []
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        costs.append(int(hashed.split(b"$")[2]))
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting_checkpw)
    attempts = {
        "unknown": (unique_email(), PASSWORD),
        "wrong_password": (known, "Wrong-Password-Guess-55"),
        "inactive": (inactive, PASSWORD),
        "malformed_email": ("not an email", PASSWORD),
    }
    for name, (address, password) in attempts.items():
        costs.clear()
        assert_error(await login(client, address, password), 401, "INVALID_CREDENTIALS")
        assert costs == [5], name


async def test_login_time_is_similar_for_unknown_wrong_and_inactive(
    make_app: ClientFactory, db: AsyncEngine
) -> None:
    """The same, measured. The fastest of many interleaved attempts per path is compared:
    on a loaded machine the slow outliers say nothing about the code."""
    custom = await make_app(bcrypt_rounds=10)
    client = custom.client
    known, inactive = unique_email(), unique_email()
    await insert_user(db, known, rounds=10)
    await insert_user(db, inactive, rounds=10, is_active=False)
    attempts = {
        "unknown": (unique_email(), PASSWORD),
        "wrong_password": (known, "Wrong-Password-Guess-55"),
        "inactive": (inactive, PASSWORD),
    }
    for address, password in attempts.values():  # warm up (dummy hash, connections)
        assert (await login(client, address, password)).status_code == 401
    timings: dict[str, list[float]] = {name: [] for name in attempts}

    # The garbage collector is kept out of the measurement: a full collection lands at the
    # same place in every round (the rounds allocate alike) and would be timed as one path.
    gc.collect()
    gc.disable()
    try:
        for _ in range(15):
            for name, (address, password) in attempts.items():
                gc.collect(0)
                started = time.perf_counter()
                response = await login(client, address, password)
                timings[name].append(time.perf_counter() - started)
                assert response.status_code == 401
    finally:
        gc.enable()

    fastest = {name: min(values) for name, values in timings.items()}
    reference = fastest["wrong_password"]
    for name, value in fastest.items():
        assert 0.7 <= value / reference <= 1.3, (name, fastest)


async def test_oauth_form_login_returns_tokens(client: httpx.AsyncClient, db: AsyncEngine) -> None:
    address = unique_email()
    await register(client, address)

    response = await client.post(LOGIN_OAUTH, data={"username": address, "password": PASSWORD})

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == TOKEN_KEYS
    assert (await me(client, body["access_token"])).status_code == 200


async def test_oauth_form_login_refuses_like_json_login(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    address = unique_email()
    await register(client, address)

    wrong = await client.post(
        LOGIN_OAUTH, data={"username": address, "password": "Wrong-Password-Guess-55"}
    )
    unknown = await client.post(
        LOGIN_OAUTH, data={"username": unique_email(), "password": PASSWORD}
    )
    json_refusal = await login(client, address, "Wrong-Password-Guess-55")

    assert_error(wrong, 401, "INVALID_CREDENTIALS")
    assert wrong.json() == unknown.json() == json_refusal.json()


async def test_oauth_login_is_the_openapi_token_url(client: httpx.AsyncClient) -> None:
    schema = (await client.get(f"{API}/openapi.json")).json()

    schemes = schema["components"]["securitySchemes"]
    flows = [scheme["flows"]["password"] for scheme in schemes.values() if "flows" in scheme]
    assert flows
    assert all(flow["tokenUrl"] == "/api/v1/auth/login/oauth" for flow in flows)
    assert LOGIN_OAUTH in schema["paths"]


@pytest.mark.parametrize(
    "body",
    [
        {"email": "a@example.com"},
        {"password": PASSWORD},
        {"email": "a@example.com", "password": PASSWORD, "remember_me": True},
        {"email": "a@example.com", "password": ""},
        {"email": "x" * 400 + "@example.com", "password": PASSWORD},
    ],
)
async def test_login_malformed_body_is_422_without_echo(
    client: httpx.AsyncClient, db: AsyncEngine, body: dict[str, object]
) -> None:
    response = await client.post(LOGIN, json=body)

    assert response.status_code == 422
    assert PASSWORD not in response.text


async def test_lower_cost_hash_is_upgraded_at_next_login(
    make_app: ClientFactory, db: AsyncEngine
) -> None:
    custom = await make_app(bcrypt_rounds=5)
    address = unique_email()
    await insert_user(db, address, rounds=4)
    old_hash = await stored_hash(db, address)
    assert hash_cost(old_hash) == 4

    assert (await login(custom.client, address)).status_code == 200

    new_hash = await stored_hash(db, address)
    assert new_hash != old_hash
    assert hash_cost(new_hash) == 5
    assert verify_password_sync(PASSWORD, new_hash)
    assert (await login(custom.client, address)).status_code == 200
    assert await stored_hash(db, address) == new_hash  # no rehash once at cost


async def test_failed_login_does_not_upgrade_the_hash(
    make_app: ClientFactory, db: AsyncEngine
) -> None:
    custom = await make_app(bcrypt_rounds=5)
    address = unique_email()
    await insert_user(db, address, rounds=4)
    old_hash = await stored_hash(db, address)

    assert (await login(custom.client, address, "Wrong-Password-Guess-55")).status_code == 401

    assert await stored_hash(db, address) == old_hash


async def test_passwords_sharing_first_72_bytes_are_distinct(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    prefix = "Quartz-lantern-Orbit-71-" + "é" * 24
    assert len(prefix.encode("utf-8")) == 72
    first, second = prefix + "-tail-one", prefix + "-tail-two"
    address = unique_email()
    await register(client, address, first)

    assert_error(await login(client, address, second), 401, "INVALID_CREDENTIALS")
    assert_error(await login(client, address, prefix), 401, "INVALID_CREDENTIALS")
    assert (await login(client, address, first)).status_code == 200


async def test_ascii_passwords_sharing_first_72_bytes_are_distinct(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    # Inserted directly: the policy check is not what is under test here.
    prefix = "Qz7!kLp2vB9#" * 6
    assert len(prefix) == 72
    address = unique_email()
    await insert_user(db, address, prefix + "-suffix-one")

    assert_error(await login(client, address, prefix + "-suffix-two"), 401, "INVALID_CREDENTIALS")
    assert (await login(client, address, prefix + "-suffix-one")).status_code == 200


@pytest.mark.parametrize(
    ("registered", "typed"),
    [
        (fullwidth("Quartz-lantern-Orbit-71"), "Quartz-lantern-Orbit-71"),
        ("Quartz-lantern-Orbit-71", fullwidth("Quartz-lantern-Orbit-71")),
        ("Вишня-облако-Река-57", "Вишня-облако-Река-57"),
        ("café-Lantern-Orbit-71", "cafe\u0301-Lantern-Orbit-71"),
    ],
)
async def test_unicode_passwords_are_nfkc_normalised(
    client: httpx.AsyncClient, db: AsyncEngine, registered: str, typed: str
) -> None:
    address = unique_email()
    await register(client, address, registered)

    assert (await login(client, address, typed)).status_code == 200


async def test_login_with_invalid_unicode_password_is_a_plain_refusal(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    address = unique_email()
    await register(client, address)
    raw = b'{"email":"' + address.encode() + b'","password":"Quartz\\ud800-lantern"}'

    response = await client.post(LOGIN, content=raw, headers={"content-type": "application/json"})

    assert response.status_code in (401, 422)
    assert response.status_code != 500


async def test_each_login_creates_a_separate_session(
    make_user: UserFactory, client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    first = await make_user()

    second_body = (await login(client, first.email)).json()

    assert unverified_claims(second_body["access_token"])["sid"] != str(first.session_id)
    sessions = await fetch(db, select(UserSession.id).where(UserSession.user_id == first.user_id))
    assert len(sessions) == 2
