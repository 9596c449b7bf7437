"""Authenticating with an organization API key: where a key works, how it is refused,
and how it follows its creator (docs/API.md, "API keys"; docs/SECURITY.md)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from orgauth.models import AuditEvent, Invitation, OrganizationApiKey, User, utcnow
from orgauth.security.api_keys import checksum, new_api_key
from tests.support.http import API, ClientFactory, assert_error, execute, fetch
from tests.support.orgs import Factory, RoledOrg

READ_AND_MANAGE = ["members:add", "members:read", "organization:read", "organization:update"]


async def make_key(
    client: httpx.AsyncClient,
    org: RoledOrg,
    permissions: list[str] | None = None,
    *,
    by: str = "admin",
) -> dict[str, Any]:
    response = await client.post(
        f"{org.url}/api-keys",
        json={"name": "script", "permissions": permissions or READ_AND_MANAGE},
        headers=getattr(org, by).headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextmanager
def statements(app: FastAPI) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = app.state.orgauth.engine.sync_engine

    def on_execute(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


async def test_a_key_works_as_bearer_or_x_api_key_on_its_organization(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    key = (await make_key(client, roled_org))["key"]
    for headers in (bearer(key), {"X-API-Key": key}):
        read = await client.get(roled_org.url, headers=headers)
        assert read.status_code == 200, read.text
        assert read.json()["id"] == str(roled_org.id)
        members = await client.get(f"{roled_org.url}/members", headers=headers)
        assert members.status_code == 200


async def test_forged_truncated_and_padded_keys_are_refused_before_any_lookup(
    client: httpx.AsyncClient, roled_org: RoledOrg, app: FastAPI
) -> None:
    key = (await make_key(client, roled_org))["key"]
    body = key[8:51]
    wrong_checksum = key[:51] + ("000000" if key[51:] != "000000" else "000001")
    forged = [
        wrong_checksum,
        key[:-1],
        key + "0",  # (trailing spaces are not part of an HTTP header value)
        "oa_live_" + "A" * 49,
        "oa_live_" + body[:-1] + "!" + checksum(body),
        "oa_live_",
    ]
    for candidate in forged:
        with statements(app) as seen:
            response = await client.get(roled_org.url, headers=bearer(candidate))
        assert_error(response, 401, "INVALID_API_KEY")
        assert not [s for s in seen if "organization_api_keys" in s], candidate
    # A well-formed key nobody issued is looked up once, then refused the same way.
    with statements(app) as seen:
        unknown = await client.get(roled_org.url, headers={"X-API-Key": new_api_key()})
    assert_error(unknown, 401, "INVALID_API_KEY")
    assert len([s for s in seen if "organization_api_keys" in s]) == 1


async def test_a_key_request_costs_at_most_two_indexed_queries_before_the_route(
    client: httpx.AsyncClient, roled_org: RoledOrg, app: FastAPI
) -> None:
    key = (await make_key(client, roled_org))["key"]
    await client.get(roled_org.url, headers=bearer(key))  # last_used_at written now
    with statements(app) as seen:
        response = await client.get(roled_org.url, headers=bearer(key))
    assert response.status_code == 200
    # The key lookup (joined with the creator's membership and role) and the route's
    # own read of the organization; no separate permission query.
    assert len([s for s in seen if "organization_api_keys" in s]) == 1
    assert len(seen) <= 2, seen


async def test_another_organizations_key_is_not_found_everywhere(
    client: httpx.AsyncClient, roled_org: RoledOrg, factory: Factory
) -> None:
    owner = await factory.account()
    other = await factory.organization(owner)
    theirs = await client.post(
        f"{API}/organizations/{other['id']}/api-keys",
        json={"name": "theirs", "permissions": ["organization:read", "organization:delete"]},
        headers=owner.headers,
    )
    key = theirs.json()["key"]
    for method, suffix in (
        ("GET", ""),
        ("GET", "/members"),
        ("DELETE", ""),  # a route keys never use: still 404 for another organization
        ("GET", "/api-keys"),
        ("POST", "/transfer-ownership"),
    ):
        response = await client.request(
            method, f"{roled_org.url}{suffix}", headers=bearer(key), json={"user_id": str(owner.id)}
        )
        assert_error(response, 404, "ORGANIZATION_NOT_FOUND")


async def test_routes_that_need_a_person_refuse_a_valid_key_with_403(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    key = (await make_key(client, roled_org, ["organization:read", "members:read"], by="owner"))[
        "key"
    ]
    for method, path, body in (
        ("GET", f"{API}/users/me", None),
        ("PATCH", f"{API}/users/me", {"first_name": "Key"}),
        ("GET", f"{API}/sessions/me", None),
        ("POST", f"{API}/auth/logout-all", None),
        ("GET", f"{API}/organizations/me", None),
        ("POST", f"{API}/organizations", {"name": "By key"}),
        ("GET", f"{API}/invitations/me", None),
        ("GET", f"{API}/admin/users", None),
        ("DELETE", roled_org.url, None),
        ("POST", f"{roled_org.url}/transfer-ownership", {"user_id": str(roled_org.admin.id)}),
        ("GET", f"{roled_org.url}/api-keys", None),
        ("POST", f"{roled_org.url}/api-keys", {"name": "x", "permissions": ["members:read"]}),
    ):
        for headers in (bearer(key), {"X-API-Key": key}):
            response = await client.request(method, path, headers=headers, json=body)
            assert_error(response, 403, "API_KEY_NOT_ALLOWED")
    # The organization is still there, and nothing was created.
    assert (await client.get(roled_org.url, headers=bearer(key))).status_code == 200


async def test_invalid_keys_are_401_on_user_routes_too(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    for headers in (bearer("oa_live_" + "A" * 49), {"X-API-Key": "not-a-key"}):
        assert_error(await client.get(f"{API}/users/me", headers=headers), 401, "INVALID_API_KEY")


async def test_both_headers_at_once_are_400(client: httpx.AsyncClient, roled_org: RoledOrg) -> None:
    key = (await make_key(client, roled_org))["key"]
    headers = {**roled_org.owner.headers, "X-API-Key": key}
    for path in (roled_org.url, f"{API}/users/me"):
        assert_error(await client.get(path, headers=headers), 400, "BAD_REQUEST")


async def test_a_key_in_the_query_string_or_a_cookie_is_never_read(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    key = (await make_key(client, roled_org))["key"]
    for params in ({"api_key": key}, {"access_token": key}, {"X-API-Key": key}):
        response = await client.get(roled_org.url, params=params)
        assert_error(response, 401, "NOT_AUTHENTICATED")
    client.cookies.set("X-API-Key", key)
    try:
        assert_error(await client.get(roled_org.url), 401, "NOT_AUTHENTICATED")
    finally:
        client.cookies.clear()


async def test_revoked_and_expired_keys_stop_on_the_next_request(
    client: httpx.AsyncClient, roled_org: RoledOrg, db: AsyncEngine
) -> None:
    first, second = await make_key(client, roled_org), await make_key(client, roled_org)
    revoked = await client.post(
        f"{roled_org.url}/api-keys/{first['id']}/revoke", headers=roled_org.owner.headers
    )
    assert revoked.status_code == 200
    assert_error(
        await client.get(roled_org.url, headers=bearer(first["key"])), 401, "INVALID_API_KEY"
    )
    await execute(
        db,
        update(OrganizationApiKey)
        .where(col(OrganizationApiKey.id) == uuid.UUID(second["id"]))
        .values(expires_at=utcnow() - timedelta(seconds=1)),
    )
    assert_error(
        await client.get(roled_org.url, headers=bearer(second["key"])), 401, "INVALID_API_KEY"
    )


async def test_requests_racing_a_revoke_never_pass_once_it_has_answered(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    created = await make_key(client, roled_org)
    key = created["key"]
    url = f"{roled_org.url}/members"

    async def use() -> int:
        return (await client.get(url, headers=bearer(key))).status_code

    racing = [asyncio.create_task(use()) for _ in range(20)]
    revoke = await client.post(
        f"{roled_org.url}/api-keys/{created['id']}/revoke", headers=roled_org.owner.headers
    )
    assert revoke.status_code == 200
    after = await asyncio.gather(*(use() for _ in range(10)))
    assert set(await asyncio.gather(*racing)) <= {200, 401}
    assert set(after) == {401}


async def test_a_key_of_a_deleted_organization_is_dead(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    key = (await make_key(client, roled_org, by="owner"))["key"]
    assert (await client.delete(roled_org.url, headers=roled_org.owner.headers)).status_code == 204
    assert_error(await client.get(roled_org.url, headers=bearer(key)), 401, "INVALID_API_KEY")


async def test_a_key_holds_at_most_what_its_creator_holds_now(
    client: httpx.AsyncClient, roled_org: RoledOrg, factory: Factory, db: AsyncEngine
) -> None:
    key = (await make_key(client, roled_org))["key"]  # created by the admin
    newcomer = await factory.account()
    add = {"user_id": str(newcomer.id), "role": "member"}
    # Demoted to member: the key keeps the reads, loses members:add.
    await client.patch(
        roled_org.member_url(roled_org.admin.id),
        json={"role": "member"},
        headers=roled_org.owner.headers,
    )
    assert (await client.get(f"{roled_org.url}/members", headers=bearer(key))).status_code == 200
    refused = await client.post(f"{roled_org.url}/members", json=add, headers=bearer(key))
    assert_error(refused, 403, "INSUFFICIENT_ROLE")
    # Back to admin: the key's own permissions apply again.
    await client.patch(
        roled_org.member_url(roled_org.admin.id),
        json={"role": "admin"},
        headers=roled_org.owner.headers,
    )
    assert (
        await client.post(f"{roled_org.url}/members", json=add, headers=bearer(key))
    ).status_code == 201
    # Deactivated, then removed: the key dies.
    await execute(
        db, update(User).where(col(User.id) == roled_org.admin.id).values(is_active=False)
    )
    assert_error(await client.get(roled_org.url, headers=bearer(key)), 401, "INVALID_API_KEY")
    await execute(db, update(User).where(col(User.id) == roled_org.admin.id).values(is_active=True))
    assert (await client.get(roled_org.url, headers=bearer(key))).status_code == 200
    await client.delete(roled_org.member_url(roled_org.admin.id), headers=roled_org.owner.headers)
    assert_error(await client.get(roled_org.url, headers=bearer(key)), 401, "INVALID_API_KEY")


async def test_a_key_never_grants_beyond_itself_and_never_owns(
    client: httpx.AsyncClient, roled_org: RoledOrg, factory: Factory
) -> None:
    key = (await make_key(client, roled_org, ["members:add", "members:read"], by="owner"))["key"]
    for role in ("owner", "admin"):
        newcomer = await factory.account()
        response = await client.post(
            f"{roled_org.url}/members",
            json={"user_id": str(newcomer.id), "role": role},
            headers=bearer(key),
        )
        assert_error(response, 403, "INSUFFICIENT_ROLE")


async def test_writes_by_a_key_are_audited_as_the_key_and_invitations_name_its_creator(
    client: httpx.AsyncClient, roled_org: RoledOrg, db: AsyncEngine
) -> None:
    created = await make_key(client, roled_org, [*READ_AND_MANAGE, "invitations:manage"])
    headers = bearer(created["key"])
    assert (
        await client.patch(roled_org.url, json={"name": "By key"}, headers=headers)
    ).status_code == 200
    invited = await client.post(
        f"{roled_org.url}/invitations", json={"email": "guest@example.com"}, headers=headers
    )
    assert invited.status_code == 201, invited.text
    assert invited.json()["inviter_id"] == str(roled_org.admin.id)
    async with AsyncSession(db) as session:
        updated = await session.scalar(
            select(AuditEvent).where(col(AuditEvent.action) == "organization.updated")
        )
        invitation = await session.scalar(select(Invitation))
    assert updated is not None
    assert (updated.actor_type, updated.actor_id) == ("api_key", uuid.UUID(created["id"]))
    assert invitation is not None
    assert invitation.inviter_id == roled_org.admin.id


async def test_last_used_at_is_written_at_most_once_a_minute(
    client: httpx.AsyncClient, roled_org: RoledOrg, db: AsyncEngine
) -> None:
    created = await make_key(client, roled_org)
    assert created["last_used_at"] is None

    async def last_used() -> Any:
        [(value,)] = await fetch(
            db,
            select(OrganizationApiKey.last_used_at).where(
                col(OrganizationApiKey.id) == uuid.UUID(created["id"])
            ),
        )
        return value

    await client.get(roled_org.url, headers=bearer(created["key"]))
    first = await last_used()
    assert first is not None
    await client.get(roled_org.url, headers=bearer(created["key"]))
    assert await last_used() == first
    await execute(
        db,
        update(OrganizationApiKey).values(last_used_at=utcnow() - timedelta(minutes=2)),
    )
    await client.get(roled_org.url, headers=bearer(created["key"]))
    assert await last_used() > first


async def test_each_key_has_its_own_rate_limit(make_app: ClientFactory, factory: Factory) -> None:
    custom = await make_app(rate_limit_enabled=True, rate_limit_api_key="3/minute")
    owner = await factory.account(client=custom.client)
    org = (
        await custom.client.post(
            f"{API}/organizations", json={"name": "Limited"}, headers=owner.headers
        )
    ).json()
    url = f"{API}/organizations/{org['id']}"
    keys = [
        (
            await custom.client.post(
                f"{url}/api-keys",
                json={"name": f"k{i}", "permissions": ["organization:read"]},
                headers=owner.headers,
            )
        ).json()["key"]
        for i in range(2)
    ]
    statuses = [
        (await custom.client.get(url, headers=bearer(keys[0]))).status_code for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    assert (await custom.client.get(url, headers=bearer(keys[1]))).status_code == 200
    assert (await custom.client.get(url, headers=owner.headers)).status_code == 200


async def test_the_key_never_appears_in_the_database_or_a_log_line(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    db: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    created = await make_key(client, roled_org, [*READ_AND_MANAGE, "invitations:manage"])
    key = created["key"]
    await client.get(roled_org.url, headers=bearer(key))
    await client.patch(roled_org.url, json={"description": "k"}, headers={"X-API-Key": key})
    await client.get(f"{API}/users/me", headers=bearer(key))  # refused
    await client.post(
        f"{roled_org.url}/api-keys/{created['id']}/revoke", headers=roled_org.owner.headers
    )
    await client.get(roled_org.url, headers=bearer(key))  # refused: revoked
    for record in caplog.records:
        assert key not in record.getMessage()
        assert key not in str(record.__dict__)
    async with db.connect() as connection:
        tables = [
            "organization_api_keys",
            "audit_events",
            "webhook_deliveries",
            "user_sessions",
        ]
        for table in tables:
            rows = (await connection.execute(text(f"SELECT * FROM {table}"))).all()  # noqa: S608
            assert key not in str(rows)
