"""POST /auth/logout and /auth/logout-all (docs/API.md)."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth.models import UserSession
from tests.support.http import (
    API,
    UserFactory,
    assert_error,
    assert_session_alive,
    assert_session_dead,
    bearer,
    fetch,
    sign_in,
)

LOGOUT = f"{API}/auth/logout"
LOGOUT_ALL = f"{API}/auth/logout-all"


async def test_logout_ends_only_the_current_session(
    client: httpx.AsyncClient, make_user: UserFactory, db: AsyncEngine
) -> None:
    leaving = await make_user()
    staying = await sign_in(client, leaving.email)

    response = await client.post(LOGOUT, headers=leaving.headers)

    assert response.status_code == 204
    assert response.content == b""
    await assert_session_dead(client, leaving)
    await assert_session_alive(client, staying)
    row = (await fetch(db, select(UserSession).where(UserSession.id == leaving.session_id)))[0]
    assert row.revoked_at is not None
    assert row.revoked_reason == "logout"


async def test_logout_twice_is_refused_the_second_time(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    session = await make_user()
    assert (await client.post(LOGOUT, headers=session.headers)).status_code == 204

    assert_error(await client.post(LOGOUT, headers=session.headers), 401, "INVALID_TOKEN")


async def test_logout_requires_an_access_token(client: httpx.AsyncClient) -> None:
    assert_error(await client.post(LOGOUT), 401, "NOT_AUTHENTICATED")
    assert_error(await client.post(LOGOUT_ALL), 401, "NOT_AUTHENTICATED")
    assert_error(await client.post(LOGOUT, headers=bearer("garbage")), 401, "INVALID_TOKEN")


async def test_logout_with_refresh_token_as_bearer_is_refused(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    session = await make_user()

    response = await client.post(LOGOUT, headers=bearer(session.refresh_token))

    assert_error(response, 401, "INVALID_TOKEN")
    await assert_session_alive(client, session)


async def test_logout_all_revokes_every_session_of_the_user(
    client: httpx.AsyncClient, make_user: UserFactory, db: AsyncEngine
) -> None:
    first = await make_user()
    second = await sign_in(client, first.email)
    third = await sign_in(client, first.email)
    stranger = await make_user()

    response = await client.post(LOGOUT_ALL, headers=second.headers)

    assert response.status_code == 200
    assert response.json() == {"revoked": 3}
    for session in (first, second, third):
        await assert_session_dead(client, session)
    await assert_session_alive(client, stranger)
    rows = await fetch(db, select(UserSession).where(UserSession.user_id == first.user_id))
    assert {row.revoked_reason for row in rows} == {"logout_all"}


async def test_logout_all_counts_only_active_sessions(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    first = await make_user()
    second = await sign_in(client, first.email)
    assert (await client.post(LOGOUT, headers=first.headers)).status_code == 204

    response = await client.post(LOGOUT_ALL, headers=second.headers)

    assert response.json() == {"revoked": 1}
    assert_error(await client.post(LOGOUT_ALL, headers=second.headers), 401, "INVALID_TOKEN")
