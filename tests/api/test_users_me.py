"""GET/PATCH /users/me and POST /users/me/password (docs/API.md)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth.models import User, UserSession
from tests.support.http import (
    API,
    OTHER_PASSWORD,
    PASSWORD,
    USER_KEYS,
    UserFactory,
    assert_error,
    assert_session_alive,
    assert_session_dead,
    bearer,
    fetch,
    login,
    sign_in,
)

ME = f"{API}/users/me"
CHANGE_PASSWORD = f"{API}/users/me/password"


async def change_password(
    client: httpx.AsyncClient, access_token: str, current: str, new: str
) -> httpx.Response:
    return await client.post(
        CHANGE_PASSWORD,
        json={"current_password": current, "new_password": new},
        headers=bearer(access_token),
    )


async def test_get_me_returns_the_caller(client: httpx.AsyncClient, make_user: UserFactory) -> None:
    session = await make_user(first_name="Grace", last_name="Hopper")

    response = await client.get(ME, headers=session.headers)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == USER_KEYS
    assert body["id"] == str(session.user_id)
    assert body["email"] == session.email
    assert (body["first_name"], body["last_name"]) == ("Grace", "Hopper")


async def test_get_me_without_token_is_401_not_authenticated(client: httpx.AsyncClient) -> None:
    response = await client.get(ME)

    assert_error(response, 401, "NOT_AUTHENTICATED")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "bearer"],
)
async def test_get_me_with_unusable_authorization_header_is_401(
    client: httpx.AsyncClient, authorization: str
) -> None:
    response = await client.get(ME, headers={"Authorization": authorization})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_patch_me_updates_names(
    client: httpx.AsyncClient, make_user: UserFactory, db: AsyncEngine
) -> None:
    session = await make_user(first_name="Old", last_name="Name")
    before = (await client.get(ME, headers=session.headers)).json()

    response = await client.patch(
        ME, json={"first_name": "  New  ", "last_name": "Surname"}, headers=session.headers
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["first_name"], body["last_name"]) == ("New", "Surname")
    assert body["updated_at"] >= before["updated_at"]
    assert (await client.get(ME, headers=session.headers)).json()["first_name"] == "New"
    stored = (await fetch(db, select(User.first_name).where(User.id == session.user_id)))[0][0]
    assert stored == "New"


async def test_patch_me_only_touches_the_fields_sent(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    session = await make_user(first_name="Keep", last_name="Change")

    response = await client.patch(ME, json={"last_name": "Changed"}, headers=session.headers)

    assert (response.json()["first_name"], response.json()["last_name"]) == ("Keep", "Changed")


async def test_patch_me_can_clear_a_name(client: httpx.AsyncClient, make_user: UserFactory) -> None:
    session = await make_user(first_name="Temporary")

    response = await client.patch(ME, json={"first_name": None}, headers=session.headers)

    assert response.status_code == 200
    assert response.json()["first_name"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"email": "new@example.com"},
        {"is_superuser": True},
        {"is_active": False},
        {"id": "00000000-0000-0000-0000-000000000001"},
        {"hashed_password": "x"},
        {"password": "Another-Strong-Pass-81"},
        {"first_name": "ok", "is_superuser": True},
        {"first_name": "x" * 101},
        {"last_name": "bad\x00name"},
    ],
)
async def test_patch_me_refuses_other_fields(
    client: httpx.AsyncClient, make_user: UserFactory, db: AsyncEngine, body: dict[str, Any]
) -> None:
    session = await make_user(first_name="Same")

    response = await client.patch(ME, json=body, headers=session.headers)

    assert response.status_code == 422
    rows = await fetch(db, select(User).where(User.id == session.user_id))
    stored = rows[0]
    assert stored.email == session.email
    assert stored.first_name == "Same"
    assert stored.is_superuser is False
    assert stored.is_active is True


async def test_patch_me_requires_authentication(client: httpx.AsyncClient) -> None:
    assert_error(await client.patch(ME, json={"first_name": "X"}), 401, "NOT_AUTHENTICATED")


async def test_password_change_keeps_current_session_and_revokes_others(
    client: httpx.AsyncClient, make_user: UserFactory, db: AsyncEngine
) -> None:
    current = await make_user()
    other = await sign_in(client, current.email)
    stranger = await make_user()

    response = await change_password(client, current.access_token, PASSWORD, OTHER_PASSWORD)

    assert response.status_code == 200
    assert set(response.json()) == {"message"}
    assert PASSWORD not in response.text
    assert OTHER_PASSWORD not in response.text
    await assert_session_dead(client, other)
    await assert_session_alive(client, current)
    await assert_session_alive(client, stranger)
    other_row = (await fetch(db, select(UserSession).where(UserSession.id == other.session_id)))[0]
    assert other_row.revoked_reason == "password_changed"
    assert_error(await login(client, current.email, PASSWORD), 401, "INVALID_CREDENTIALS")
    assert (await login(client, current.email, OTHER_PASSWORD)).status_code == 200


async def test_password_change_with_wrong_current_password_is_400(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    session = await make_user()
    other = await sign_in(client, session.email)

    response = await change_password(
        client, session.access_token, "Not-The-Password-42", OTHER_PASSWORD
    )

    assert_error(response, 400, "INVALID_PASSWORD")
    assert "Not-The-Password-42" not in response.text
    await assert_session_alive(client, other)
    assert (await login(client, session.email, PASSWORD)).status_code == 200


@pytest.mark.parametrize("new_password", ["short", "password1234", "x" * 129])
async def test_password_change_to_weak_password_is_422(
    client: httpx.AsyncClient, make_user: UserFactory, new_password: str
) -> None:
    session = await make_user()
    other = await sign_in(client, session.email)

    response = await change_password(client, session.access_token, PASSWORD, new_password)

    assert_error(response, 422, "WEAK_PASSWORD")
    await assert_session_alive(client, other)
    assert (await login(client, session.email, PASSWORD)).status_code == 200


async def test_password_change_refuses_password_built_from_identity(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    session = await make_user(
        email_address="marie.curie@example.com", first_name="Marie", last_name="Curie"
    )

    response = await change_password(client, session.access_token, PASSWORD, "MarieCurie!!!")

    assert_error(response, 422, "WEAK_PASSWORD")


@pytest.mark.parametrize(
    "body",
    [
        {"new_password": OTHER_PASSWORD},
        {"current_password": PASSWORD},
        {"current_password": PASSWORD, "new_password": OTHER_PASSWORD, "email": "x@example.com"},
    ],
)
async def test_password_change_malformed_body_is_422(
    client: httpx.AsyncClient, make_user: UserFactory, body: dict[str, str]
) -> None:
    session = await make_user()

    response = await client.post(CHANGE_PASSWORD, json=body, headers=session.headers)

    assert response.status_code == 422
    assert PASSWORD not in response.text
    assert OTHER_PASSWORD not in response.text


async def test_password_change_requires_authentication(client: httpx.AsyncClient) -> None:
    response = await client.post(
        CHANGE_PASSWORD, json={"current_password": PASSWORD, "new_password": OTHER_PASSWORD}
    )

    assert_error(response, 401, "NOT_AUTHENTICATED")
