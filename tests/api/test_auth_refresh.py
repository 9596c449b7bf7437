"""POST /auth/refresh: rotation, reuse detection, expiry and races (docs/API.md,
docs/SECURITY.md)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth.models import RefreshToken, User, UserSession, utcnow
from orgauth.security.tokens import hash_token
from tests.support.http import (
    TOKEN_KEYS,
    ClientFactory,
    LoggedIn,
    UserFactory,
    assert_error,
    assert_session_alive,
    assert_session_dead,
    execute,
    fetch,
    latest_reset_token,
    logged_in_from,
    me,
    refresh,
    register,
    sign_in,
    unique_email,
    unverified_claims,
)


async def session_row(engine: AsyncEngine, session_id: uuid.UUID) -> UserSession:
    rows = await fetch(engine, select(UserSession).where(UserSession.id == session_id))
    row: UserSession = rows[0]
    return row


async def token_row(engine: AsyncEngine, token: str) -> RefreshToken:
    rows = await fetch(
        engine, select(RefreshToken).where(RefreshToken.token_hash == hash_token(token))
    )
    row: RefreshToken = rows[0]
    return row


async def test_refresh_rotates_the_refresh_token(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    session = await make_user()

    response = await refresh(client, session.refresh_token)

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == TOKEN_KEYS
    assert body["token_type"] == "bearer"
    assert body["user"]["id"] == session.user["id"]
    assert body["refresh_token"] != session.refresh_token
    assert unverified_claims(body["access_token"])["sid"] == str(session.session_id)
    assert (await me(client, body["access_token"])).status_code == 200
    assert (await refresh(client, body["refresh_token"])).status_code == 200
    assert_error(await refresh(client, session.refresh_token), 401, "INVALID_REFRESH_TOKEN")


async def test_refresh_chain_keeps_working(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    session = await make_user()
    for _ in range(5):
        session = await assert_session_alive(client, session)


async def test_reused_refresh_token_revokes_only_that_session(
    client: httpx.AsyncClient, make_user: UserFactory, db: AsyncEngine
) -> None:
    stolen = await make_user()
    other = await sign_in(client, stolen.email)
    rotated = logged_in_from(
        await refresh(client, stolen.refresh_token), stolen.email, stolen.password
    )

    replay = await refresh(client, stolen.refresh_token)

    assert_error(replay, 401, "INVALID_REFRESH_TOKEN")
    assert_error(await me(client, rotated.access_token), 401, "INVALID_TOKEN")
    assert_error(await me(client, stolen.access_token), 401, "INVALID_TOKEN")
    assert_error(await refresh(client, rotated.refresh_token), 401, "INVALID_REFRESH_TOKEN")
    row = await session_row(db, stolen.session_id)
    assert row.revoked_at is not None
    assert row.revoked_reason == "refresh_reuse"
    await assert_session_alive(client, other)


async def test_reuse_inside_grace_is_refused_without_revoking(
    make_app: ClientFactory, db: AsyncEngine
) -> None:
    client = (await make_app(refresh_reuse_grace_seconds=30)).client
    address = unique_email()
    await register(client, address)
    first = await sign_in(client, address)
    rotated = logged_in_from(await refresh(client, first.refresh_token), address, first.password)

    replay = await refresh(client, first.refresh_token)

    assert_error(replay, 401, "INVALID_REFRESH_TOKEN")
    assert (await session_row(db, first.session_id)).revoked_at is None
    await assert_session_alive(client, rotated)


async def test_reuse_after_grace_revokes_the_session(
    make_app: ClientFactory, db: AsyncEngine
) -> None:
    client = (await make_app(refresh_reuse_grace_seconds=30)).client
    address = unique_email()
    await register(client, address)
    first = await sign_in(client, address)
    rotated = logged_in_from(await refresh(client, first.refresh_token), address, first.password)
    await execute(
        db,
        update(RefreshToken)
        .where(RefreshToken.token_hash == hash_token(first.refresh_token))
        .values(rotated_at=utcnow() - timedelta(seconds=31)),
    )

    assert_error(await refresh(client, first.refresh_token), 401, "INVALID_REFRESH_TOKEN")

    assert (await session_row(db, first.session_id)).revoked_reason == "refresh_reuse"
    await assert_session_dead(client, rotated)


async def test_expired_refresh_token_is_refused(
    client: httpx.AsyncClient, make_user: UserFactory, db: AsyncEngine
) -> None:
    session = await make_user()
    await execute(
        db,
        update(RefreshToken)
        .where(RefreshToken.token_hash == hash_token(session.refresh_token))
        .values(expires_at=utcnow() - timedelta(seconds=1)),
    )

    assert_error(await refresh(client, session.refresh_token), 401, "INVALID_REFRESH_TOKEN")
    # Merely expired is not theft: the session itself is left alone.
    assert (await session_row(db, session.session_id)).revoked_at is None
    assert (await me(client, session.access_token)).status_code == 200


async def test_refresh_token_expires_after_its_configured_lifetime(
    make_app: ClientFactory,
) -> None:
    client = (await make_app(refresh_token_expire_days=0.00002)).client  # about 1.7 s
    address = unique_email()
    await register(client, address)
    session = await sign_in(client, address)

    await asyncio.sleep(2.0)

    assert_error(await refresh(client, session.refresh_token), 401, "INVALID_REFRESH_TOKEN")


async def test_refresh_token_expiry_is_capped_at_session_expiry(
    make_app: ClientFactory, db: AsyncEngine
) -> None:
    client = (await make_app(session_max_lifetime_days=1, refresh_token_expire_days=7)).client
    address = unique_email()
    await register(client, address)
    session = await sign_in(client, address)
    row = await session_row(db, session.session_id)
    assert row.expires_at <= utcnow() + timedelta(days=1)
    assert (await token_row(db, session.refresh_token)).expires_at == row.expires_at

    # Near the end of the session, a refresh must not extend it.
    soon = utcnow() + timedelta(minutes=5)
    await execute(
        db, update(UserSession).where(UserSession.id == session.session_id).values(expires_at=soon)
    )
    rotated = await refresh(client, session.refresh_token)

    assert rotated.status_code == 200
    new_token = rotated.json()["refresh_token"]
    assert (await token_row(db, new_token)).expires_at == soon
    assert (await session_row(db, session.session_id)).expires_at == soon


async def test_session_past_its_absolute_expiry_is_refused(
    client: httpx.AsyncClient, make_user: UserFactory, db: AsyncEngine
) -> None:
    session = await make_user()
    past = utcnow() - timedelta(seconds=1)
    await execute(
        db, update(UserSession).where(UserSession.id == session.session_id).values(expires_at=past)
    )

    await assert_session_dead(client, session)


async def test_refresh_is_refused_after_user_deactivation(
    client: httpx.AsyncClient, make_user: UserFactory, db: AsyncEngine
) -> None:
    session = await make_user()
    await execute(db, update(User).where(User.id == session.user_id).values(is_active=False))

    await assert_session_dead(client, session)


async def test_tokens_die_with_a_deleted_user(
    client: httpx.AsyncClient, make_user: UserFactory, db: AsyncEngine
) -> None:
    session = await make_user()
    await execute(db, delete(User).where(User.id == session.user_id))

    await assert_session_dead(client, session)


async def test_refresh_returns_current_user_data(
    client: httpx.AsyncClient, make_user: UserFactory, db: AsyncEngine
) -> None:
    session = await make_user()
    await execute(db, update(User).where(User.id == session.user_id).values(first_name="Renamed"))

    response = await refresh(client, session.refresh_token)

    assert response.json()["user"]["first_name"] == "Renamed"


@pytest.mark.parametrize(
    "token",
    [
        "x",
        "oa_rt_" + "Zq3" * 15,
        "oa_rt_",
        "oa_rt_" + "A" * 300,
        "oa_pr_" + "Zq3" * 15,
        "' OR '1'='1",
        "oa_rt_\u0000\u202e",
    ],
)
async def test_unknown_or_malformed_refresh_token_is_refused(
    client: httpx.AsyncClient, make_user: UserFactory, token: str
) -> None:
    session = await make_user()

    assert_error(await refresh(client, token), 401, "INVALID_REFRESH_TOKEN")

    await assert_session_alive(client, session)


@pytest.mark.parametrize("body", [{}, {"refresh_token": ""}, {"refresh_token": "x" * 600}])
async def test_refresh_body_errors_are_422(client: httpx.AsyncClient, body: dict[str, str]) -> None:
    response = await client.post("/api/v1/auth/refresh", json=body)

    assert response.status_code == 422


async def test_access_token_is_not_a_refresh_token(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    session = await make_user()

    assert_error(await refresh(client, session.access_token), 401, "INVALID_REFRESH_TOKEN")


async def test_reset_token_is_not_a_refresh_token(
    client: httpx.AsyncClient, make_user: UserFactory, email_dir: Path
) -> None:
    session = await make_user()
    await client.post("/api/v1/auth/password-reset/request", json={"email": session.email})
    reset_token = latest_reset_token(email_dir)

    assert_error(await refresh(client, reset_token), 401, "INVALID_REFRESH_TOKEN")


async def concurrent_refreshes(
    client: httpx.AsyncClient, session: LoggedIn, count: int
) -> list[httpx.Response]:
    return list(
        await asyncio.gather(*(refresh(client, session.refresh_token) for _ in range(count)))
    )


async def test_concurrent_refreshes_with_one_token_succeed_exactly_once(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    session = await make_user()

    responses = await concurrent_refreshes(client, session, 10)

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [401] * 9, statuses
    for response in responses:
        if response.status_code == 401:
            assert_error(response, 401, "INVALID_REFRESH_TOKEN")


async def test_concurrent_refreshes_inside_grace_leave_the_winner_working(
    make_app: ClientFactory, db: AsyncEngine
) -> None:
    client = (await make_app(refresh_reuse_grace_seconds=30)).client
    address = unique_email()
    await register(client, address)
    session = await sign_in(client, address)

    responses = await concurrent_refreshes(client, session, 10)

    winners = [r for r in responses if r.status_code == 200]
    assert len(winners) == 1, [r.status_code for r in responses]
    assert (await session_row(db, session.session_id)).revoked_at is None
    await assert_session_alive(client, logged_in_from(winners[0], address, session.password))
    tokens = await fetch(
        db, select(RefreshToken).where(RefreshToken.session_id == session.session_id)
    )
    assert len(tokens) == 3  # the original, the winner's, and the one just rotated to
