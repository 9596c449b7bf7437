"""/admin/stats (docs/API.md): counts computed by the database."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text, update
from sqlalchemy.engine import make_url

from orgauth.models import OrgRole, UserSession, utcnow
from tests.support.http import ClientFactory, assert_error
from tests.support.orgs import ADMIN, Account, Factory
from tests.support.settings import is_postgres_run

STATS = f"{ADMIN}/stats"


async def _stats(client: httpx.AsyncClient, superuser: Account) -> dict[str, Any]:
    response = await client.get(STATS, headers=superuser.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _registrations(body: dict[str, Any]) -> dict[date, int]:
    """Days with registrations (zero-count days, if listed at all, are dropped)."""
    entries = body["registrations_last_30_days"]
    assert all(set(entry) == {"date", "count"} for entry in entries)
    days = [date.fromisoformat(entry["date"]) for entry in entries]
    assert days == sorted(days)
    assert len(days) == len(set(days))
    return {
        date.fromisoformat(entry["date"]): entry["count"] for entry in entries if entry["count"]
    }


async def test_stats_of_a_fresh_install(client: httpx.AsyncClient, superuser: Account) -> None:
    body = await _stats(client, superuser)
    assert set(body) == {"users", "organizations", "sessions", "registrations_last_30_days"}
    assert body["users"] == {"total": 1, "active": 1, "superusers": 1}
    assert body["organizations"] == {"total": 0}
    assert body["sessions"] == {"active": 1}
    assert _registrations(body) == {utcnow().date(): 1}


async def test_user_counts_split_active_and_superusers(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    await factory.user()
    await factory.user(is_active=False)
    await factory.user(is_active=False, is_superuser=True)
    await factory.user(is_superuser=True)
    body = await _stats(client, superuser)
    assert body["users"] == {"total": 5, "active": 3, "superusers": 3}


async def test_organization_and_active_session_counts(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    alice = await factory.account()
    bob = await factory.account()
    carol = await factory.account()
    await factory.organization(alice)
    await factory.organization(alice)
    org = await factory.organization(bob)
    await factory.add_membership(uuid.UUID(org["id"]), carol.id, OrgRole.MEMBER)
    await client.post("/api/v1/auth/logout", headers=bob.headers)
    async with factory.engine.begin() as connection:
        await connection.execute(
            update(UserSession)
            .where(UserSession.user_id == carol.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    body = await _stats(client, superuser)
    assert body["organizations"] == {"total": 3}
    assert body["sessions"] == {"active": 2}  # the superuser's and alice's


async def test_registrations_are_grouped_by_utc_day_over_the_last_30_days(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    now = utcnow()
    today = now.date()
    midnight = datetime.combine(today, time(0, 0), tzinfo=UTC)
    created = [
        now - timedelta(days=1),
        now - timedelta(days=1, minutes=5),
        midnight - timedelta(seconds=1),  # yesterday, one second before midnight UTC
        now - timedelta(days=5),
        now - timedelta(days=29),  # the oldest day still in the window
        now - timedelta(days=31),  # outside
        now - timedelta(days=400),  # far outside
    ]
    if now - midnight > timedelta(seconds=1):
        created.append(midnight + timedelta(seconds=1))  # today, right after midnight
    for when in created:
        await factory.user(created_at=when, is_active=when.day % 2 == 0)
    body = await _stats(client, superuser)
    expected = {
        today: 1 + (1 if now - midnight > timedelta(seconds=1) else 0),  # the superuser
        today - timedelta(days=1): 3,
        today - timedelta(days=5): 1,
        today - timedelta(days=29): 1,
    }
    assert _registrations(body) == expected
    assert body["users"]["total"] == len(created) + 1  # totals are not windowed


async def test_stats_are_for_superusers_only(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    user = await factory.account()
    assert_error(await client.get(STATS, headers=user.headers), 403, "SUPERUSER_REQUIRED")
    assert_error(await client.get(STATS), 401, "NOT_AUTHENTICATED")


@pytest.mark.skipif(not is_postgres_run(), reason="PostgreSQL session time zones")
async def test_registration_days_are_utc_days_whatever_the_session_time_zone(
    make_app: ClientFactory, factory: Factory, database_url: str
) -> None:
    """At UTC+14 a registration at 12:00 UTC yesterday is already "today" locally; the stats
    still count it on its UTC day."""
    name = make_url(database_url).database
    async with factory.engine.begin() as connection:
        await connection.execute(
            text(f"ALTER DATABASE \"{name}\" SET timezone TO 'Pacific/Kiritimati'")
        )
    try:
        custom = await make_app()
        async with custom.app.state.orgauth.engine.connect() as connection:
            assert await connection.scalar(text("SHOW timezone")) == "Pacific/Kiritimati"
        root = await factory.superuser(client=custom.client)
        yesterday = utcnow().date() - timedelta(days=1)
        await factory.user(created_at=datetime.combine(yesterday, time(12, 0), tzinfo=UTC))
        body = await _stats(custom.client, root)
        assert _registrations(body) == {utcnow().date(): 1, yesterday: 1}
    finally:
        async with factory.engine.begin() as connection:
            await connection.execute(text(f'ALTER DATABASE "{name}" RESET timezone'))
