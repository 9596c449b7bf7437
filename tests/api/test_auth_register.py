"""POST /auth/register (docs/API.md, docs/SECURITY.md)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth.models import User
from tests.support.http import (
    API,
    PASSWORD,
    USER_KEYS,
    ClientFactory,
    assert_error,
    fetch,
    login,
    unique_email,
)

REGISTER = f"{API}/auth/register"
SECRET_FIELDS = ("password", "hashed_password", "hash")


async def count_users(engine: AsyncEngine) -> int:
    rows = await fetch(engine, select(func.count()).select_from(User))
    return int(rows[0][0])


def assert_no_secret_keys(value: Any) -> None:
    """No key anywhere in a JSON body names a password or hash."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert not any(secret in key.lower() for secret in SECRET_FIELDS), key
            assert_no_secret_keys(item)
    elif isinstance(value, list):
        for item in value:
            assert_no_secret_keys(item)


async def test_register_returns_user_without_password_fields(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    address = unique_email()
    response = await client.post(
        REGISTER,
        json={"email": address, "password": PASSWORD, "first_name": "Ada", "last_name": "King"},
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) == USER_KEYS
    assert_no_secret_keys(body)
    assert PASSWORD not in response.text
    assert body["email"] == address
    assert (body["first_name"], body["last_name"]) == ("Ada", "King")
    assert body["is_active"] is True
    assert body["is_superuser"] is False
    assert body["created_at"].endswith(("Z", "+00:00"))
    stored = (await fetch(db, select(User.hashed_password).where(User.email == address)))[0][0]
    assert stored not in response.text
    assert PASSWORD not in stored


async def test_register_stores_email_in_lower_case(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    response = await client.post(
        REGISTER, json={"email": "  Mixed.Case@Example.COM ", "password": PASSWORD}
    )

    assert response.status_code == 201
    assert response.json()["email"] == "mixed.case@example.com"
    rows = await fetch(db, select(User.email))
    assert [row[0] for row in rows] == ["mixed.case@example.com"]


async def test_register_taken_email_gets_generic_refusal(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    address = unique_email()
    assert (await client.post(REGISTER, json={"email": address, "password": PASSWORD})).is_success

    same = await client.post(REGISTER, json={"email": address, "password": PASSWORD})
    other_case = await client.post(
        REGISTER, json={"email": address.upper(), "password": "Different-Pass-Word-93"}
    )

    assert_error(same, 400, "REGISTRATION_FAILED")
    assert_error(other_case, 400, "REGISTRATION_FAILED")
    assert same.json() == other_case.json()
    assert address not in same.text
    assert await count_users(db) == 1


async def test_register_is_refused_when_registration_disabled(
    make_app: ClientFactory, db: AsyncEngine
) -> None:
    custom = await make_app(allow_registration=False)

    response = await custom.client.post(
        REGISTER, json={"email": unique_email(), "password": PASSWORD}
    )

    assert_error(response, 403, "REGISTRATION_DISABLED")
    assert await count_users(db) == 0


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("Qz7!kLp2", "shorter than PASSWORD_MIN_LENGTH"),
        ("Qz7!kLp2vB9", "one character short"),
        ("Qx9-" * 32 + "A", "129 characters"),
        ("password1234", "common"),
        ("qwertyuiop123", "keyboard pattern"),
        ("ada.lovelace2024", "built from the email"),
        ("AdaLovelace!!", "built from the names"),
        ("            ", "only spaces"),
    ],
)
async def test_register_refuses_weak_password(
    client: httpx.AsyncClient, db: AsyncEngine, password: str, why: str
) -> None:
    response = await client.post(
        REGISTER,
        json={
            "email": "ada.lovelace@example.com",
            "password": password,
            "first_name": "Ada",
            "last_name": "Lovelace",
        },
    )

    assert_error(response, 422, "WEAK_PASSWORD")
    assert password not in response.text, why
    assert await count_users(db) == 0


async def test_register_accepts_a_random_password_of_the_shortest_minimum_length(
    make_app: ClientFactory, db: AsyncEngine
) -> None:
    custom = await make_app(password_min_length=8)

    accepted = await custom.client.post(
        REGISTER, json={"email": unique_email(), "password": "5cnL5-cL"}
    )
    walk = await custom.client.post(
        REGISTER, json={"email": unique_email(), "password": "zaq1@WSX"}
    )

    assert accepted.status_code == 201, accepted.text
    assert_error(walk, 422, "WEAK_PASSWORD")
    assert await count_users(db) == 1


@pytest.mark.parametrize("length", [73, 100, 128])
async def test_register_accepts_long_passwords_up_to_max_length(
    client: httpx.AsyncClient, length: int
) -> None:
    password = ("Qx9-Lantern-" * 11)[:length]
    address = unique_email()

    response = await client.post(REGISTER, json={"email": address, "password": password})

    assert response.status_code == 201, response.text
    assert (await login(client, address, password)).status_code == 200
    assert_error(await login(client, address, password[:-1] + "!"), 401, "INVALID_CREDENTIALS")


@pytest.mark.parametrize(
    "extra",
    [
        {"is_superuser": True},
        {"is_active": False},
        {"id": "00000000-0000-0000-0000-000000000001"},
        {"hashed_password": "bcrypt-sha256$not-a-hash"},
        {"unknown_field": "x"},
    ],
)
async def test_register_refuses_privileged_or_unknown_fields(
    client: httpx.AsyncClient, db: AsyncEngine, extra: dict[str, Any]
) -> None:
    response = await client.post(
        REGISTER, json={"email": unique_email(), "password": PASSWORD, **extra}
    )

    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)
    assert PASSWORD not in response.text
    assert await count_users(db) == 0


async def test_register_refuses_nul_in_password_without_error(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    response = await client.post(
        REGISTER, json={"email": unique_email(), "password": "Quartz-lantern\x00-Orbit-71"}
    )

    assert response.status_code == 422
    assert "Quartz-lantern" not in response.text
    assert await count_users(db) == 0


@pytest.mark.parametrize(
    "raw",
    [
        b'{"email":"a@example.com","password":"abc\\ud800defghijklmnop"}',
        b'{"email":"a@example.com","password":"abc\\udfffdefghijklmnop"}',
        b'{"email":"a\\ud800@example.com","password":"Quartz-lantern-Orbit-71"}',
        b'{"email":"a@example.com","password":"Quartz-lantern-Orbit-71","first_name":"\\ud800"}',
    ],
)
async def test_register_refuses_invalid_unicode_with_422(
    client: httpx.AsyncClient, db: AsyncEngine, raw: bytes
) -> None:
    response = await client.post(
        REGISTER, content=raw, headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert "abc" not in response.text
    assert "defghijklmnop" not in response.text
    assert await count_users(db) == 0


async def test_register_refuses_body_that_is_not_utf8_without_error(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    raw = b'{"email":"a@example.com","password":"abc\xff\xfedefghijklmnop"}'

    response = await client.post(
        REGISTER, content=raw, headers={"content-type": "application/json"}
    )

    # FastAPI answers an undecodable body with 400 before validation; never a 500.
    assert response.status_code in (400, 422)
    assert "defghijklmnop" not in response.text
    assert await count_users(db) == 0


async def test_undecodable_body_is_a_bad_request(
    client: httpx.AsyncClient,
) -> None:
    raw = b'{"email":"a@example.com","password":"abc\xff\xfedefghijklmnop"}'

    response = await client.post(
        REGISTER, content=raw, headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["detail"]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    "address",
    ["not-an-email", "a@", "@example.com", "a b@example.com", "", "a@example.com\x00", "x" * 330],
)
async def test_register_refuses_invalid_email(
    client: httpx.AsyncClient, db: AsyncEngine, address: str
) -> None:
    response = await client.post(REGISTER, json={"email": address, "password": PASSWORD})

    assert response.status_code == 422
    assert PASSWORD not in response.text
    assert await count_users(db) == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"first_name": "x" * 101},
        {"last_name": "y" * 101},
        {"first_name": "Ada\nLovelace"},
        {"first_name": 42},
        {"password": "Qx9-" * 300},
        {"email": ["a@example.com"]},
    ],
)
async def test_register_refuses_oversized_or_malformed_fields(
    client: httpx.AsyncClient, db: AsyncEngine, fields: dict[str, Any]
) -> None:
    body = {"email": unique_email(), "password": PASSWORD, **fields}

    response = await client.post(REGISTER, json=body)

    assert response.status_code == 422
    assert PASSWORD not in response.text
    assert "Qx9-Qx9-" not in response.text
    assert await count_users(db) == 0


async def test_register_accepts_names_at_their_maximum_length(client: httpx.AsyncClient) -> None:
    response = await client.post(
        REGISTER,
        json={
            "email": unique_email(),
            "password": PASSWORD,
            "first_name": "F" * 100,
            "last_name": "L" * 100,
        },
    )

    assert response.status_code == 201
    assert response.json()["first_name"] == "F" * 100


async def test_register_validation_errors_never_echo_the_password(
    client: httpx.AsyncClient,
) -> None:
    secret = "Sup3r-Secret-Value-Never-Echoed"
    responses = [
        await client.post(REGISTER, json={"email": "bad", "password": secret}),
        await client.post(REGISTER, json={"email": unique_email(), "password": secret, "x": 1}),
        await client.post(REGISTER, json={"password": secret}),
        await client.post(REGISTER, content=b'{"password": "' + secret.encode() + b'",'),
    ]

    for response in responses:
        assert response.status_code == 422
        assert secret not in response.text
        assert isinstance(response.json()["detail"], list)


async def test_register_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        REGISTER, content=b"{not json", headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


async def test_concurrent_registrations_of_one_email_create_one_user(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    address = unique_email()
    bodies = [{"email": address, "password": PASSWORD}] * 4 + [
        {"email": address.upper(), "password": PASSWORD}
    ] * 4

    responses = await asyncio.gather(*(client.post(REGISTER, json=body) for body in bodies))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [400] * 7, statuses
    for response in responses:
        if response.status_code == 400:
            assert_error(response, 400, "REGISTRATION_FAILED")
    assert await count_users(db) == 1
