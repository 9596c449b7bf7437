"""Each webhook event type is enqueued by its change with the ``data`` of docs/API.md
("Events and payloads"), built from the same objects the API answers with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth.webhooks.outbox import WEBHOOK_EVENT_TYPES
from tests.support.http import API
from tests.support.invitations import (
    accept,
    decline,
    invited,
    latest_invitation_token,
    mark_verified,
)
from tests.support.orgs import Account, Factory, RoledOrg
from tests.support.webhooks import create_endpoint, deliveries

HOOK = "https://hooks.invalid/orgauth"  # never resolves; these tests only read the outbox


async def _payloads(db: AsyncEngine) -> list[dict[str, Any]]:
    return [json.loads(row.payload) for row in await deliveries(db)]


async def _subscribe(client: httpx.AsyncClient, org: RoledOrg) -> None:
    await create_endpoint(client, org.id, org.owner.headers, HOOK, ["*"])


def _one(payloads: list[dict[str, Any]], event_type: str) -> dict[str, Any]:
    found = [p for p in payloads if p["type"] == event_type]
    assert len(found) == 1, [p["type"] for p in payloads]
    data: dict[str, Any] = found[0]["data"]
    return data


async def test_member_events_carry_the_member_as_the_api_shows_it(
    client: httpx.AsyncClient, roled_org: RoledOrg, factory: Factory, db: AsyncEngine
) -> None:
    await _subscribe(client, roled_org)
    newcomer = await factory.account()
    headers = roled_org.owner.headers
    added = await client.post(
        f"{roled_org.url}/members", json={"user_id": str(newcomer.id)}, headers=headers
    )
    changed = await client.patch(
        roled_org.member_url(newcomer.id), json={"role": "admin"}, headers=headers
    )
    await client.delete(roled_org.member_url(newcomer.id), headers=headers)
    await client.delete(roled_org.member_url(roled_org.member.id), headers=roled_org.member.headers)

    payloads = await _payloads(db)
    assert _one(payloads, "member.added") == {"member": added.json(), "source": "direct"}
    assert _one(payloads, "member.role_changed") == {
        "member": changed.json(),
        "previous_role": "member",
    }
    removals = [p["data"] for p in payloads if p["type"] == "member.removed"]
    assert removals == [
        {
            "user_id": str(newcomer.id),
            "email": newcomer.email,
            "role": "admin",
            "reason": "removed",
        },
        {
            "user_id": str(roled_org.member.id),
            "email": roled_org.member.email,
            "role": "member",
            "reason": "left",
        },
    ]
    for payload in payloads:
        assert payload["organization_id"] == str(roled_org.id)


async def test_organization_events(
    client: httpx.AsyncClient, roled_org: RoledOrg, db: AsyncEngine
) -> None:
    await _subscribe(client, roled_org)
    headers = roled_org.owner.headers
    updated = await client.patch(roled_org.url, json={"description": "Hooks"}, headers=headers)
    transferred = await client.post(
        f"{roled_org.url}/transfer-ownership",
        json={"user_id": str(roled_org.admin.id)},
        headers=headers,
    )
    assert transferred.status_code == 200, transferred.text

    payloads = await _payloads(db)
    organization = _one(payloads, "organization.updated")
    assert organization["changed"] == ["description"]
    assert organization["organization"] == {
        k: v for k, v in updated.json().items() if k not in ("role", "permissions")
    }
    assert _one(payloads, "organization.ownership_transferred") == transferred.json()


async def test_invitation_events_carry_the_invitation_without_its_token(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    db: AsyncEngine,
    email_dir: Path,
) -> None:
    await _subscribe(client, roled_org)
    owner = roled_org.owner
    guest = await factory.account()
    await mark_verified(db, guest.id)
    first = await invited(client, roled_org.id, owner, guest.email)
    token = latest_invitation_token(email_dir, guest.email)
    await client.post(
        f"{roled_org.url}/invitations/{first['id']}/resend", json={}, headers=owner.headers
    )
    token = latest_invitation_token(email_dir, guest.email)
    accepted = await accept(client, guest, token=token)
    assert accepted.status_code == 200, accepted.text
    other: Account = await factory.account()
    second = await invited(client, roled_org.id, owner, other.email)
    await decline(client, None, token=latest_invitation_token(email_dir, other.email))
    third = await invited(client, roled_org.id, owner, "third@example.com")
    await invited(client, roled_org.id, owner, "third@example.com")  # replaces the third
    await client.post(f"{roled_org.url}/invitations/{third['id']}/revoke", headers=owner.headers)

    payloads = await _payloads(db)
    types = [p["type"] for p in payloads]
    assert types.count("invitation.created") == 4
    assert _one(payloads, "invitation.resent")["invitation"]["id"] == first["id"]
    assert _one(payloads, "invitation.accepted") == {"invitation": accepted.json()["invitation"]}
    assert _one(payloads, "invitation.declined")["invitation"]["id"] == second["id"]
    assert _one(payloads, "invitation.declined")["invitation"]["status"] == "declined"
    [replaced] = [p["data"] for p in payloads if p["type"] == "invitation.revoked"]
    assert replaced["invitation"]["id"] == third["id"]
    assert replaced["invitation"]["status"] == "revoked"
    member = [p for p in payloads if p["type"] == "member.added"][-1]["data"]
    assert member["source"] == "invitation"
    assert member["member"] == accepted.json()["member"]
    assert member["member"]["user_id"] == str(guest.id)
    dumped = json.dumps(payloads)
    assert token not in dumped
    assert "token" not in dumped


async def test_role_events_carry_the_role(
    client: httpx.AsyncClient, roled_org: RoledOrg, db: AsyncEngine
) -> None:
    await _subscribe(client, roled_org)
    headers = roled_org.owner.headers
    created = await client.post(
        f"{roled_org.url}/roles",
        json={"key": "viewer", "name": "Viewer", "permissions": ["organization:read"]},
        headers=headers,
    )
    updated = await client.patch(
        f"{roled_org.url}/roles/viewer", json={"name": "Seer"}, headers=headers
    )
    await client.delete(f"{roled_org.url}/roles/viewer", headers=headers)

    payloads = await _payloads(db)
    assert _one(payloads, "role.created") == {"role": created.json()}
    assert _one(payloads, "role.updated") == {"role": updated.json()}
    assert _one(payloads, "role.deleted")["role"]["key"] == "viewer"


async def test_deleting_a_user_sends_removals_and_deletions_of_emptied_organizations(
    client: httpx.AsyncClient, roled_org: RoledOrg, factory: Factory, db: AsyncEngine
) -> None:
    await _subscribe(client, roled_org)
    superuser = await factory.superuser()
    alone = await factory.organization(roled_org.member)  # the member owns this one alone
    await create_endpoint(client, alone["id"], roled_org.member.headers, HOOK, ["*"])

    response = await client.delete(
        f"{API}/admin/users/{roled_org.member.id}", headers=superuser.headers
    )
    assert response.status_code == 204, response.text

    payloads = await _payloads(db)
    removed = _one(payloads, "member.removed")
    assert removed == {
        "user_id": str(roled_org.member.id),
        "email": roled_org.member.email,
        "role": "member",
        "reason": "user_deleted",
    }
    deleted = _one(payloads, "organization.deleted")
    assert deleted == {
        "organization": {"id": alone["id"], "name": alone["name"], "slug": alone["slug"]}
    }
    for payload in payloads:
        assert payload["actor"]["id"] == str(superuser.id)


def test_every_event_type_is_documented() -> None:
    api = (Path(__file__).resolve().parents[2] / "docs" / "API.md").read_text()
    table = api.split("### Events and payloads", 1)[1].split("###", 1)[0]
    for event_type in WEBHOOK_EVENT_TYPES:
        action = event_type.split(".", 1)[1]
        assert f"`{event_type}`" in table or f"`.{action}`" in table, event_type
