"""Session policies: ``SESSION_IDLE_TIMEOUT_MINUTES`` ends unused sessions for access and
refresh alike; ``MAX_SESSIONS_PER_USER`` evicts the least recently used at sign-in, also
under concurrent sign-ins (docs/CONFIGURATION.md, docs/SECURITY.md)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from orgauth.models import AuditEvent, UserSession, utcnow
from orgauth.services.context import SESSION_TOUCH_INTERVAL, SessionPolicy
from orgauth.services.maintenance import prune_expired
from orgauth.settings import OrgAuthSettings
from tests.support.http import (
    API,
    PASSWORD,
    ClientFactory,
    assert_error,
    execute,
    me,
    refresh,
    register,
    sign_in,
    unique_email,
)
from tests.support.servers import ServerFactory, server_environment
from tests.support.settings import TEST_SECRET_KEY, is_postgres_run


async def _age(db: AsyncEngine, session_id: uuid.UUID, by: timedelta) -> None:
    """Pretend the session was last used ``by`` ago."""
    await execute(
        db,
        update(UserSession)
        .where(col(UserSession.id) == session_id)
        .values(last_used_at=utcnow() - by),
    )


async def _session(db: AsyncEngine, session_id: uuid.UUID) -> UserSession:
    async with AsyncSession(db) as s:
        row = await s.get(UserSession, session_id)
        assert row is not None
        return row


def test_the_touch_interval_is_a_minute_or_half_a_short_timeout() -> None:
    assert SessionPolicy().touch_interval == SESSION_TOUCH_INTERVAL
    assert SessionPolicy(idle_timeout=timedelta(minutes=30)).touch_interval == timedelta(seconds=60)
    assert SessionPolicy(idle_timeout=timedelta(minutes=1.5)).touch_interval == timedelta(
        seconds=45
    )
    settings = OrgAuthSettings(_env_file=None, session_idle_timeout_minutes=0.05)  # type: ignore[call-arg]
    assert SessionPolicy.of(settings).idle_timeout == timedelta(seconds=3)


async def test_an_idle_session_ends_for_access_refresh_listing_and_is_pruned(
    make_app: ClientFactory, db: AsyncEngine
) -> None:
    custom = await make_app(session_idle_timeout_minutes=0.5)  # decimal minutes: 30 s
    client = custom.client
    address = unique_email("idle")
    await register(client, address)
    idle = await sign_in(client, address)
    busy = await sign_in(client, address)

    await _age(db, idle.session_id, timedelta(seconds=31))
    assert_error(await me(client, idle.access_token), 401, "INVALID_TOKEN")
    assert_error(await refresh(client, idle.refresh_token), 401, "INVALID_REFRESH_TOKEN")
    listed = await client.get(f"{API}/sessions/me", headers=busy.headers)
    assert [s["id"] for s in listed.json()["sessions"]] == [str(busy.session_id)]

    policy = custom.app.state.orgauth.context.session_policy
    async with AsyncSession(db) as session:
        result = await prune_expired(session, policy=policy)
    assert result.sessions == 1
    async with AsyncSession(db) as session:
        assert await session.get(UserSession, idle.session_id) is None
        assert await session.get(UserSession, busy.session_id) is not None


async def test_a_session_in_use_is_kept_alive_by_its_requests(
    make_app: ClientFactory, db: AsyncEngine
) -> None:
    custom = await make_app(session_idle_timeout_minutes=0.5)  # 30 s: touched every 15 s
    client = custom.client
    address = unique_email("busy")
    await register(client, address)
    session = await sign_in(client, address)

    await _age(db, session.session_id, timedelta(seconds=20))  # beyond half the timeout
    assert (await me(client, session.access_token)).status_code == 200
    touched = await _session(db, session.session_id)
    assert utcnow() - touched.last_used_at < timedelta(seconds=10)  # written again
    await _age(db, session.session_id, timedelta(seconds=20))
    assert (await refresh(client, session.refresh_token)).status_code == 200


async def test_without_a_timeout_old_sessions_live_on(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    address = unique_email("forever")
    await register(client, address)
    session = await sign_in(client, address)
    await _age(db, session.session_id, timedelta(days=20))
    assert (await me(client, session.access_token)).status_code == 200


async def test_sign_in_evicts_the_least_recently_used_beyond_the_maximum(
    make_app: ClientFactory, db: AsyncEngine
) -> None:
    custom = await make_app(max_sessions_per_user=2)
    client = custom.client
    address = unique_email("cap")
    await register(client, address)
    first = await sign_in(client, address)
    second = await sign_in(client, address)
    # The first was used more recently than the second: the second goes.
    await _age(db, second.session_id, timedelta(minutes=5))
    await _age(db, first.session_id, timedelta(minutes=1))
    third = await sign_in(client, address)

    assert (await me(client, first.access_token)).status_code == 200
    assert (await me(client, third.access_token)).status_code == 200
    assert_error(await me(client, second.access_token), 401, "INVALID_TOKEN")
    evicted = await _session(db, second.session_id)
    assert evicted.revoked_reason == "evicted"
    async with AsyncSession(db) as session:
        rows = (
            await session.scalars(
                select(AuditEvent).where(col(AuditEvent.action) == "session.evicted")
            )
        ).all()
    assert [r.targets for r in rows] == [[{"type": "session", "id": str(second.session_id)}]]


async def _active_sessions(db: AsyncEngine, user_id: uuid.UUID) -> int:
    async with AsyncSession(db) as session:
        count = await session.scalar(
            select(func.count())
            .select_from(UserSession)
            .where(
                col(UserSession.user_id) == user_id,
                col(UserSession.revoked_at).is_(None),
            )
        )
    return int(count or 0)


async def test_concurrent_sign_ins_never_exceed_the_maximum(
    make_app: ClientFactory, db: AsyncEngine
) -> None:
    custom = await make_app(max_sessions_per_user=3)
    client = custom.client
    address = unique_email("burst")
    registered = await register(client, address)
    user_id = uuid.UUID(registered["id"])
    responses = await asyncio.gather(
        *(
            client.post(f"{API}/auth/login", json={"email": address, "password": PASSWORD})
            for _ in range(8)
        )
    )
    assert {r.status_code for r in responses} == {200}
    assert await _active_sessions(db, user_id) == 3


@pytest.mark.slow
@pytest.mark.skipif(
    not is_postgres_run(),
    reason="needs PostgreSQL shared by two server processes: set ORGAUTH_TEST_DATABASE_URL",
)
async def test_sign_ins_across_two_processes_never_exceed_the_maximum(
    db: AsyncEngine, database_url: str, server_factory: ServerFactory
) -> None:
    environment = server_environment(
        database_url=database_url,
        secret_key=TEST_SECRET_KEY,
        log_level="WARNING",
        max_sessions_per_user=2,
    )
    first, second = (server.url for server in server_factory.start(environment, count=2))
    async with (
        httpx.AsyncClient(base_url=first, timeout=30.0) as one,
        httpx.AsyncClient(base_url=second, timeout=30.0) as two,
    ):
        address = unique_email("two-processes")
        registered = await one.post(
            f"{API}/auth/register", json={"email": address, "password": PASSWORD}
        )
        user_id = uuid.UUID(registered.json()["id"])
        for _ in range(3):
            responses = await asyncio.gather(
                *(
                    (one if i % 2 else two).post(
                        f"{API}/auth/login", json={"email": address, "password": PASSWORD}
                    )
                    for i in range(10)
                )
            )
            assert {r.status_code for r in responses} == {200}
            assert await _active_sessions(db, user_id) == 2
