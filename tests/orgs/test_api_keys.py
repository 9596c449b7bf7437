"""Managing organization API keys: the key shown once and stored only hashed, the
permission and escalation rules, the limit, revocation and its audit and webhook events."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth.models import OrganizationApiKey, utcnow
from orgauth.security.api_keys import is_well_formed
from orgauth.services.api_keys import MAX_ACTIVE_KEYS
from tests.support.http import assert_error, execute
from tests.support.orgs import Factory, RoledOrg, assert_validation_error, audit_event
from tests.support.webhooks import create_endpoint, deliveries


def keys_url(org: RoledOrg) -> str:
    return f"{org.url}/api-keys"


async def _create(
    client: httpx.AsyncClient, org: RoledOrg, permissions: list[str] | None = None, **fields: object
) -> httpx.Response:
    body = {"name": "CI deploy", "permissions": permissions or ["members:read"], **fields}
    return await client.post(keys_url(org), json=body, headers=org.owner.headers)


async def test_the_key_is_shown_once_and_only_its_hash_and_start_are_stored(
    client: httpx.AsyncClient, roled_org: RoledOrg, db: AsyncEngine
) -> None:
    response = await _create(client, roled_org, ["members:read", "members:read", "audit_logs:read"])
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    key = body.pop("key")
    assert is_well_formed(key)
    assert body["start"] == key[:12]
    assert body["permissions"] == ["audit_logs:read", "members:read"]
    assert body["status"] == "active"
    assert body["created_by"] == str(roled_org.owner.id)
    lifetime = utcnow() - timedelta(days=-90)
    assert abs((lifetime - _parse(body["expires_at"])).total_seconds()) < 60

    listed = await client.get(keys_url(roled_org), headers=roled_org.owner.headers)
    assert listed.json()["data"] == [body]
    assert key not in listed.text
    async with db.connect() as connection:
        for table in ("organization_api_keys", "audit_events"):
            rows = (await connection.execute(text(f"SELECT * FROM {table}"))).all()  # noqa: S608
            assert key not in json.dumps([list(map(str, row)) for row in rows])


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "x", "permissions": ["members:explode"]}, "UNKNOWN_PERMISSION"),
        ({"name": "", "permissions": ["members:read"]}, None),
        ({"name": "   ", "permissions": ["members:read"]}, None),
        ({"name": "x" * 101, "permissions": ["members:read"]}, None),
        ({"name": "x", "permissions": []}, None),
        ({"name": "x", "permissions": ["members:read"], "expires_in_days": 0}, None),
        ({"name": "x", "permissions": ["members:read"], "expires_in_days": 366}, None),
        ({"name": "x", "permissions": ["members:read"], "key": "oa_live_mine"}, None),
    ],
)
async def test_invalid_bodies(
    client: httpx.AsyncClient, roled_org: RoledOrg, body: dict[str, object], code: str | None
) -> None:
    response = await client.post(keys_url(roled_org), json=body, headers=roled_org.owner.headers)
    if code:
        assert_error(response, 422, code)
    else:
        assert_validation_error(response)


async def test_a_key_never_holds_more_than_its_creator(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    # Admins hold api_keys:manage but not organization:delete.
    response = await client.post(
        keys_url(roled_org),
        json={"name": "too much", "permissions": ["organization:delete"]},
        headers=roled_org.admin.headers,
    )
    assert_error(response, 403, "INSUFFICIENT_ROLE")
    allowed = await client.post(
        keys_url(roled_org),
        json={"name": "fine", "permissions": ["members:read"]},
        headers=roled_org.admin.headers,
    )
    assert allowed.status_code == 201


@pytest.mark.parametrize("who", ["member", "outsider"])
async def test_members_without_the_permission_and_strangers_are_refused(
    client: httpx.AsyncClient, roled_org: RoledOrg, who: str
) -> None:
    key_id = (await _create(client, roled_org)).json()["id"]
    caller = getattr(roled_org, who)
    status, code = {
        "member": (403, "INSUFFICIENT_ROLE"),
        "outsider": (404, "ORGANIZATION_NOT_FOUND"),
    }[who]
    for response in (
        await client.post(
            keys_url(roled_org),
            json={"name": "x", "permissions": ["members:read"]},
            headers=caller.headers,
        ),
        await client.get(keys_url(roled_org), headers=caller.headers),
        await client.post(f"{keys_url(roled_org)}/{key_id}/revoke", headers=caller.headers),
    ):
        assert_error(response, status, code)


async def test_revoking_is_idempotent_and_any_manager_may_revoke_a_stronger_key(
    client: httpx.AsyncClient, roled_org: RoledOrg, db: AsyncEngine
) -> None:
    strong = (await _create(client, roled_org, ["organization:delete"])).json()
    url = f"{keys_url(roled_org)}/{strong['id']}/revoke"
    first = await client.post(url, headers=roled_org.admin.headers)
    assert first.status_code == 200
    assert first.json()["status"] == "revoked"
    again = await client.post(url, headers=roled_org.owner.headers)
    assert again.json() == first.json()
    async with db.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT action FROM audit_events WHERE action LIKE 'api_key.%' ORDER BY occurred_at"
            )
        )
        actions = [row[0] for row in rows]
    assert actions == ["api_key.created", "api_key.revoked"]


async def test_another_organizations_key_is_not_found(
    client: httpx.AsyncClient, roled_org: RoledOrg, factory: Factory
) -> None:
    other_owner = await factory.account()
    other = await factory.organization(other_owner)
    theirs = await client.post(
        f"/api/v1/organizations/{other['id']}/api-keys",
        json={"name": "theirs", "permissions": ["members:read"]},
        headers=other_owner.headers,
    )
    for key_id in (theirs.json()["id"], str(uuid.uuid4())):
        response = await client.post(
            f"{keys_url(roled_org)}/{key_id}/revoke", headers=roled_org.owner.headers
        )
        assert_error(response, 404, "API_KEY_NOT_FOUND")


async def test_status_filter_and_the_limit_counts_active_keys_only(
    client: httpx.AsyncClient, roled_org: RoledOrg, db: AsyncEngine
) -> None:
    first = (await _create(client, roled_org)).json()
    second = (await _create(client, roled_org)).json()
    await client.post(
        f"{keys_url(roled_org)}/{first['id']}/revoke", headers=roled_org.owner.headers
    )
    await execute(
        db,
        update(OrganizationApiKey)
        .where(OrganizationApiKey.id == uuid.UUID(second["id"]))
        .values(expires_at=utcnow() - timedelta(seconds=1)),
    )
    for status, expected in (("revoked", first), ("expired", second)):
        listed = await client.get(
            f"{keys_url(roled_org)}?status={status}", headers=roled_org.owner.headers
        )
        assert [k["id"] for k in listed.json()["data"]] == [expected["id"]]
        assert listed.json()["data"][0]["status"] == status
    for _ in range(MAX_ACTIVE_KEYS):
        assert (await _create(client, roled_org)).status_code == 201
    assert_error(await _create(client, roled_org), 409, "API_KEY_LIMIT_REACHED")


async def test_created_and_revoked_reach_webhooks_without_the_key(
    client: httpx.AsyncClient, roled_org: RoledOrg, db: AsyncEngine
) -> None:
    await create_endpoint(client, roled_org.id, roled_org.owner.headers, "https://hooks.invalid/k")
    created = (await _create(client, roled_org)).json()
    await client.post(
        f"{keys_url(roled_org)}/{created['id']}/revoke", headers=roled_org.owner.headers
    )
    payloads = [json.loads(row.payload) for row in await deliveries(db)]
    assert [p["type"] for p in payloads] == ["api_key.created", "api_key.revoked"]
    sent = dict(created)
    key = sent.pop("key")
    assert payloads[0]["data"]["api_key"] == sent
    assert payloads[1]["data"]["api_key"]["status"] == "revoked"
    assert key not in json.dumps(payloads)


async def test_the_audit_line_names_the_key_without_clashing_with_the_log_record(
    client: httpx.AsyncClient, roled_org: RoledOrg, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="orgauth.audit")
    created = (await _create(client, roled_org)).json()
    line = audit_event(caplog, "api_key.created")
    assert line.name == "orgauth.audit"
    assert line.meta_name == "CI deploy"  # type: ignore[attr-defined]
    assert line.permissions == ["members:read"]  # type: ignore[attr-defined]
    assert line.api_key_id == created["id"]  # type: ignore[attr-defined]
