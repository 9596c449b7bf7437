"""/admin/sessions and DELETE /admin/users/{id}/sessions (docs/API.md)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from orgauth.models import UserSession, utcnow
from tests.support.http import assert_error, bearer
from tests.support.orgs import (
    ADMIN,
    PAGINATION_KEYS,
    Account,
    Factory,
    assert_validation_error,
    audit_event,
)

SESSIONS = f"{ADMIN}/sessions"
SESSION_KEYS = {
    "id",
    "user_id",
    "device_name",
    "device_type",
    "browser",
    "os",
    "ip_address",
    "created_at",
    "last_used_at",
    "expires_at",
    "revoked_at",
    "is_active",
}


async def _list(client: httpx.AsyncClient, superuser: Account, **params: Any) -> dict[str, Any]:
    response = await client.get(SESSIONS, params=params, headers=superuser.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_lists_every_session_with_its_owner(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    alice = await factory.account()
    await factory.login(alice.email)
    body = await _list(client, superuser)
    assert set(body["pagination"]) == PAGINATION_KEYS
    assert body["pagination"]["total"] == 3
    assert all(set(item) == SESSION_KEYS for item in body["data"])
    owners = sorted(item["user_id"] for item in body["data"])
    assert owners == sorted([str(superuser.id), str(alice.id), str(alice.id)])
    assert all(item["is_active"] and item["revoked_at"] is None for item in body["data"])
    assert all(item["ip_address"] == "203.0.113.10" for item in body["data"])


async def test_sessions_are_listed_most_recently_used_first(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    users = [await factory.account() for _ in range(3)]
    now = utcnow()
    async with factory.engine.begin() as connection:
        for age, user in enumerate(users, start=1):
            await connection.execute(
                update(UserSession)
                .where(UserSession.user_id == user.id)
                .values(last_used_at=now - timedelta(minutes=age))
            )
    body = await _list(client, superuser, limit=4)
    # The superuser's session was created moments ago; the others were aged 1-3 minutes.
    assert [item["user_id"] for item in body["data"]] == [
        str(superuser.id),
        *[str(u.id) for u in users],
    ]


async def test_filters_by_user(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    alice = await factory.account()
    await factory.login(alice.email)
    await factory.account()
    body = await _list(client, superuser, user_id=str(alice.id))
    assert body["pagination"]["total"] == 2
    assert {item["user_id"] for item in body["data"]} == {str(alice.id)}
    assert (await _list(client, superuser, user_id=str(uuid.uuid4())))["data"] == []


async def test_filters_by_active_state(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    logged_out = await factory.account()
    expired = await factory.account()
    live = await factory.account()
    assert (await client.post("/api/v1/auth/logout", headers=logged_out.headers)).status_code == 204
    async with factory.engine.begin() as connection:
        await connection.execute(
            update(UserSession)
            .where(UserSession.user_id == expired.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    active = await _list(client, superuser, active="true")
    assert {item["user_id"] for item in active["data"]} == {str(live.id), str(superuser.id)}
    inactive = await _list(client, superuser, active="false")
    by_user = {item["user_id"]: item for item in inactive["data"]}
    assert set(by_user) == {str(logged_out.id), str(expired.id)}
    assert by_user[str(logged_out.id)]["revoked_at"] is not None
    assert by_user[str(expired.id)]["revoked_at"] is None
    assert not any(item["is_active"] for item in inactive["data"])
    everything = await _list(client, superuser)
    assert everything["pagination"]["total"] == 4


async def test_filters_combine(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    alice = await factory.account()
    await factory.login(alice.email)
    await client.post("/api/v1/auth/logout", headers=alice.headers)
    active = await _list(client, superuser, user_id=str(alice.id), active="true")
    revoked = await _list(client, superuser, user_id=str(alice.id), active="false")
    assert (active["pagination"]["total"], revoked["pagination"]["total"]) == (1, 1)


async def test_pagination_over_sessions(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    alice = await factory.account()
    for _ in range(4):
        await factory.login(alice.email)
    first = await _list(client, superuser, limit=2, page=1)
    last = await _list(client, superuser, limit=2, page=3)
    assert first["pagination"]["total"] == 6
    assert first["pagination"]["total_pages"] == 3
    assert len(first["data"]) == len(last["data"]) == 2
    assert not {i["id"] for i in first["data"]} & {i["id"] for i in last["data"]}


# --- revoking every session of a user ------------------------------------------------


async def test_revoking_a_users_sessions_reports_how_many_and_kills_their_tokens(
    client: httpx.AsyncClient,
    factory: Factory,
    superuser: Account,
    caplog: pytest.LogCaptureFixture,
) -> None:
    victim = await factory.account()
    second_token, _ = await factory.login(victim.email)
    bystander = await factory.account()
    response = await client.delete(f"{ADMIN}/users/{victim.id}/sessions", headers=superuser.headers)
    assert response.status_code == 200
    assert response.json() == {"revoked": 2}
    for token in (victim.access_token, second_token):
        assert_error(
            await client.get("/api/v1/users/me", headers=bearer(token)), 401, "INVALID_TOKEN"
        )
    assert (await client.get("/api/v1/users/me", headers=bystander.headers)).status_code == 200
    event = audit_event(caplog, "admin.sessions_revoked")
    assert (event.user_id, event.revoked) == (str(victim.id), 2)
    again = await client.delete(f"{ADMIN}/users/{victim.id}/sessions", headers=superuser.headers)
    assert again.json() == {"revoked": 0}


async def test_revoked_user_can_still_sign_in_again(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    victim = await factory.account()
    await client.delete(f"{ADMIN}/users/{victim.id}/sessions", headers=superuser.headers)
    token, _ = await factory.login(victim.email)
    assert (await client.get("/api/v1/users/me", headers=bearer(token))).status_code == 200


async def test_revoking_sessions_of_an_unknown_user_is_404(
    client: httpx.AsyncClient, superuser: Account
) -> None:
    response = await client.delete(
        f"{ADMIN}/users/{uuid.uuid4()}/sessions", headers=superuser.headers
    )
    assert_error(response, 404, "USER_NOT_FOUND")
    assert_validation_error(
        await client.delete(f"{ADMIN}/users/xyz/sessions", headers=superuser.headers)
    )


async def test_revoking_your_own_sessions_signs_you_out(
    client: httpx.AsyncClient, superuser: Account
) -> None:
    response = await client.delete(
        f"{ADMIN}/users/{superuser.id}/sessions", headers=superuser.headers
    )
    assert response.json() == {"revoked": 1}
    assert_error(await client.get(SESSIONS, headers=superuser.headers), 401, "INVALID_TOKEN")
