"""SQL statements per request: constant in the page size (no N+1), and small.

Statements are counted with a ``before_cursor_execute`` listener on the app's own engine:
every statement orgauth sends, the per-request authentication included, goes through
SQLAlchemy and is visible to its events (and so to tracing such as OpenTelemetry's).
Transaction control (BEGIN/COMMIT/ROLLBACK) does not pass through that event on aiosqlite
or asyncpg, so the counts below are the SELECT/UPDATE statements a request really sends.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth.models import Membership, Organization, OrgRole, User, UserSession, utcnow
from tests.support.http import API
from tests.support.orgs import Account, Factory, password_hash

#: Exact statements per request, authentication included (one SELECT joining the session
#: and the user). A change here is a conscious decision, not an accident.
EXPECTED_STATEMENTS = {
    "users_me": 1,  # authentication only
    "sessions_me": 2,  # authentication + the list
    "organizations_me": 2,  # authentication + one query with roles and member counts
    "members": 4,  # authentication + organization/role check + count + page
    "admin_users": 3,  # authentication + count + page
    "admin_organizations": 3,  # authentication + count + page with member counts
    "admin_sessions": 3,  # authentication + count + page
}
MAX_STATEMENTS = 6


@pytest.fixture
def factory(db: AsyncEngine, client: httpx.AsyncClient) -> Factory:
    return Factory(db, client)


class StatementLog:
    """Every statement the app's engine sends while :meth:`recording` is active."""

    def __init__(self, app: FastAPI) -> None:
        self.engine = app.state.orgauth.engine.sync_engine
        self.statements: list[str] = []

    def _record(self, *args: Any) -> None:
        self.statements.append(str(args[2]))  # (conn, cursor, statement, ...)

    @contextmanager
    def recording(self) -> Iterator[list[str]]:
        self.statements = []
        event.listen(self.engine, "before_cursor_execute", self._record)
        try:
            yield self.statements
        finally:
            event.remove(self.engine, "before_cursor_execute", self._record)


@pytest.fixture
def statements(app: FastAPI) -> StatementLog:
    return StatementLog(app)


async def count_statements(
    client: httpx.AsyncClient,
    log: StatementLog,
    path: str,
    account: Account,
    params: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any] | list[Any]]:
    """Statements of one GET (after a warm-up request, so pool set-up is not counted)."""
    warm = await client.get(path, params=params, headers=account.headers)
    assert warm.status_code == 200, warm.text
    with log.recording() as seen:
        response = await client.get(path, params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    return len(seen), response.json()


# --- bulk set-up (Core executemany) --------------------------------------------------


async def insert_users(engine: AsyncEngine, count: int) -> list[uuid.UUID]:
    now = utcnow()
    rows = [
        {
            "id": uuid.uuid4(),
            "email": f"bulk-{uuid.uuid4().hex[:12]}@example.com",
            "hashed_password": password_hash(),
            "first_name": f"First{i}",
            "last_name": f"Last{i}",
            "is_active": True,
            "is_superuser": False,
            "created_at": now - timedelta(seconds=i),
            "updated_at": now,
            "password_changed_at": now,
        }
        for i in range(count)
    ]
    async with engine.begin() as connection:
        await connection.execute(insert(User), rows)
    return [row["id"] for row in rows]


async def insert_organizations(engine: AsyncEngine, count: int) -> list[uuid.UUID]:
    now = utcnow()
    rows = [
        {
            "id": uuid.uuid4(),
            "name": f"Bulk org {i}",
            "slug": f"bulk-{uuid.uuid4().hex[:12]}",
            "created_at": now - timedelta(seconds=i),
            "updated_at": now,
        }
        for i in range(count)
    ]
    async with engine.begin() as connection:
        await connection.execute(insert(Organization), rows)
    return [row["id"] for row in rows]


async def insert_memberships(
    engine: AsyncEngine, pairs: list[tuple[uuid.UUID, uuid.UUID]], role: OrgRole = OrgRole.MEMBER
) -> None:
    now = utcnow()
    async with engine.begin() as connection:
        await connection.execute(
            insert(Membership),
            [
                {"organization_id": org, "user_id": user, "role": str(role), "joined_at": now}
                for org, user in pairs
            ],
        )


async def insert_sessions(engine: AsyncEngine, user_id: uuid.UUID, count: int) -> None:
    now = utcnow()
    async with engine.begin() as connection:
        await connection.execute(
            insert(UserSession),
            [
                {
                    "id": uuid.uuid4(),
                    "user_id": user_id,
                    "device_name": "Bulk device",
                    "ip_address": "198.51.100.7",
                    "created_at": now - timedelta(minutes=i),
                    "last_used_at": now - timedelta(minutes=i),
                    "expires_at": now + timedelta(days=1),
                }
                for i in range(count)
            ],
        )


# --- the checks ----------------------------------------------------------------------


async def test_authentication_is_exactly_one_select(
    client: httpx.AsyncClient, factory: Factory, statements: StatementLog
) -> None:
    user = await factory.account()
    count, _ = await count_statements(client, statements, f"{API}/users/me", user)
    with statements.recording() as seen:
        await client.get(f"{API}/users/me", headers=user.headers)
    assert count == EXPECTED_STATEMENTS["users_me"], seen
    assert seen[0].lstrip().upper().startswith("SELECT")
    assert "user_sessions" in seen[0]
    assert "users" in seen[0]


async def test_member_list_statements_do_not_grow_with_the_page(
    client: httpx.AsyncClient, factory: Factory, statements: StatementLog
) -> None:
    owner = await factory.account()
    org_id = uuid.UUID((await factory.organization(owner))["id"])
    members = await insert_users(factory.engine, 60)
    await insert_memberships(factory.engine, [(org_id, user) for user in members])
    path = f"{API}/organizations/{org_id}/members"
    one, page_one = await count_statements(client, statements, path, owner, {"limit": 1})
    fifty, page_fifty = await count_statements(client, statements, path, owner, {"limit": 50})
    assert isinstance(page_one, dict)
    assert isinstance(page_fifty, dict)
    assert (len(page_one["data"]), len(page_fifty["data"])) == (1, 50)
    filtered, _ = await count_statements(
        client, statements, path, owner, {"limit": 50, "role": "member", "search": "last"}
    )
    assert one == fifty == filtered == EXPECTED_STATEMENTS["members"]


async def test_my_organizations_statements_do_not_grow_with_memberships(
    client: httpx.AsyncClient, factory: Factory, statements: StatementLog
) -> None:
    few = await factory.account()
    many = await factory.account()
    orgs = await insert_organizations(factory.engine, 30)
    await insert_memberships(factory.engine, [(orgs[0], few.id)])
    await insert_memberships(factory.engine, [(org, many.id) for org in orgs])
    others = await insert_users(factory.engine, 5)
    await insert_memberships(factory.engine, [(org, user) for org in orgs for user in others])
    path = f"{API}/organizations/me"
    one, mine_one = await count_statements(client, statements, path, few)
    thirty, mine_thirty = await count_statements(client, statements, path, many)
    assert (len(mine_one), len(mine_thirty)) == (1, 30)
    counts = {item["id"]: item["member_count"] for item in mine_thirty}
    assert counts.pop(str(orgs[0])) == 7  # `few` belongs to the first one too
    assert set(counts.values()) == {6}
    assert one == thirty == EXPECTED_STATEMENTS["organizations_me"]


async def test_my_sessions_statements_do_not_grow_with_sessions(
    client: httpx.AsyncClient, factory: Factory, statements: StatementLog
) -> None:
    few = await factory.account()
    many = await factory.account()
    await insert_sessions(factory.engine, many.id, 29)
    path = f"{API}/sessions/me"
    one, body_one = await count_statements(client, statements, path, few)
    thirty, body_thirty = await count_statements(client, statements, path, many)
    assert isinstance(body_one, dict)
    assert isinstance(body_thirty, dict)
    assert (body_one["total"], body_thirty["total"]) == (1, 30)
    assert one == thirty == EXPECTED_STATEMENTS["sessions_me"]


async def test_admin_user_list_statements_do_not_grow_with_the_page(
    client: httpx.AsyncClient, factory: Factory, statements: StatementLog
) -> None:
    root = await factory.superuser()
    await insert_users(factory.engine, 60)
    path = f"{API}/admin/users"
    one, _ = await count_statements(client, statements, path, root, {"limit": 1})
    fifty, body = await count_statements(
        client, statements, path, root, {"limit": 50, "sort_by": "last_name", "search": "bulk"}
    )
    assert isinstance(body, dict)
    assert len(body["data"]) == 50
    assert one == fifty == EXPECTED_STATEMENTS["admin_users"]


async def test_admin_organization_list_statements_do_not_grow_with_the_page(
    client: httpx.AsyncClient, factory: Factory, statements: StatementLog
) -> None:
    root = await factory.superuser()
    orgs = await insert_organizations(factory.engine, 60)
    users = await insert_users(factory.engine, 3)
    await insert_memberships(factory.engine, [(org, user) for org in orgs for user in users])
    path = f"{API}/admin/organizations"
    one, _ = await count_statements(client, statements, path, root, {"limit": 1})
    fifty, body = await count_statements(client, statements, path, root, {"limit": 50})
    assert isinstance(body, dict)
    assert len(body["data"]) == 50
    assert {item["member_count"] for item in body["data"]} == {3}
    assert one == fifty == EXPECTED_STATEMENTS["admin_organizations"]


async def test_admin_session_list_statements_do_not_grow_with_the_page(
    client: httpx.AsyncClient, factory: Factory, statements: StatementLog
) -> None:
    root = await factory.superuser()
    user = await factory.account()
    await insert_sessions(factory.engine, user.id, 60)
    path = f"{API}/admin/sessions"
    one, _ = await count_statements(client, statements, path, root, {"limit": 1})
    fifty, body = await count_statements(
        client, statements, path, root, {"limit": 50, "user_id": str(user.id), "active": "true"}
    )
    assert isinstance(body, dict)
    assert len(body["data"]) == 50
    assert one == fifty == EXPECTED_STATEMENTS["admin_sessions"]


def test_expected_counts_stay_small() -> None:
    assert max(EXPECTED_STATEMENTS.values()) <= MAX_STATEMENTS


async def test_a_custom_role_costs_the_same_statements_as_a_built_in_one(
    client: httpx.AsyncClient, factory: Factory, statements: StatementLog
) -> None:
    """The custom role's permissions come with the membership, in the same statement."""
    owner = await factory.account()
    org_id = uuid.UUID((await factory.organization(owner))["id"])
    created = await client.post(
        f"{API}/organizations/{org_id}/roles",
        json={"key": "readers", "name": "Readers", "permissions": ["organization:read"]},
        headers=owner.headers,
    )
    assert created.status_code == 201, created.text
    built_in, custom = await factory.account(), await factory.account()
    await factory.add_membership(org_id, built_in.id, OrgRole.MEMBER)
    await factory.add_membership(org_id, custom.id, "readers")
    path = f"{API}/organizations/{org_id}"

    built_in_count, _ = await count_statements(client, statements, path, built_in)
    custom_count, _ = await count_statements(client, statements, path, custom)
    with statements.recording() as seen:
        await client.get(path, headers=custom.headers)

    assert built_in_count == custom_count == 2  # authentication + organization with the role
    assert "organization_roles" in seen[1]
    members, _ = await count_statements(
        client, statements, f"{path}/members", owner, {"role": "readers"}
    )
    assert members == EXPECTED_STATEMENTS["members"] + 1  # the custom filter's key is checked
