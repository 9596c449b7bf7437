"""The webhook endpoint routes: who may use them, what they accept, the address rules at
creation and update, the secret shown once, the limit, and the audit trail."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from orgauth.extension import OrgAuth
from orgauth.models import AuditEvent
from orgauth.services.webhooks import MAX_ENDPOINTS, WebhookRules
from tests.support.http import assert_error
from tests.support.orgs import Factory, RoledOrg, assert_validation_error
from tests.support.webhooks import Receiver, create_endpoint, webhooks_url

PUBLIC_URL = "https://hooks.example.com/orgauth"


async def _audit_rows(db: AsyncEngine, prefix: str) -> list[AuditEvent]:
    async with AsyncSession(db) as session:
        rows = await session.scalars(
            select(AuditEvent)
            .where(col(AuditEvent.action).startswith(prefix))
            .order_by(col(AuditEvent.occurred_at))
        )
        return list(rows)


def _strict(auth: OrgAuth, answers: dict[str, list[str]]) -> None:
    """The address rules of production (no private addresses) with a resolver that knows
    ``answers``; other names do not resolve."""

    async def resolver(host: str, port: int) -> list[str]:
        if host in answers:
            return answers[host]
        raise OSError("name does not resolve")

    rules = auth.webhook_rules
    auth.webhook_rules = WebhookRules(
        allow_http=True, allow_private=False, box=rules.box, resolver=resolver
    )


async def test_create_shows_the_secret_once_and_no_read_ever_does(
    client: httpx.AsyncClient, roled_org: RoledOrg, receiver: Receiver
) -> None:
    response = await client.post(
        webhooks_url(roled_org.id),
        json={"url": receiver.url, "events": ["member.added", "role.created"], "description": "CI"},
        headers=roled_org.admin.headers,
    )
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    secret = created.pop("secret")
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert created["events"] == ["member.added", "role.created"]
    assert created["enabled"] is True
    assert created["secret_rotated_at"] is None
    one = await client.get(
        f"{webhooks_url(roled_org.id)}/{created['id']}", headers=roled_org.admin.headers
    )
    assert one.json() == created
    listed = await client.get(webhooks_url(roled_org.id), headers=roled_org.admin.headers)
    assert listed.json()["data"] == [created]
    assert secret not in one.text + listed.text


@pytest.mark.parametrize("who", ["member", "outsider"])
async def test_members_without_the_permission_and_strangers_are_refused(
    client: httpx.AsyncClient, roled_org: RoledOrg, receiver: Receiver, who: str
) -> None:
    endpoint = await create_endpoint(client, roled_org.id, roled_org.owner.headers, receiver.url)
    caller = getattr(roled_org, who)
    status, code = (
        (403, "INSUFFICIENT_ROLE") if who == "member" else (404, "ORGANIZATION_NOT_FOUND")
    )
    base = webhooks_url(roled_org.id)
    attempts = [
        client.post(base, json={"url": receiver.url, "events": ["*"]}, headers=caller.headers),
        client.get(base, headers=caller.headers),
        client.get(f"{base}/{endpoint['id']}", headers=caller.headers),
        client.patch(f"{base}/{endpoint['id']}", json={"enabled": False}, headers=caller.headers),
        client.post(f"{base}/{endpoint['id']}/rotate-secret", headers=caller.headers),
        client.get(f"{base}/{endpoint['id']}/deliveries", headers=caller.headers),
        client.delete(f"{base}/{endpoint['id']}", headers=caller.headers),
    ]
    for attempt in attempts:
        assert_error(await attempt, status, code)


async def test_another_organizations_endpoint_is_not_found(
    client: httpx.AsyncClient, roled_org: RoledOrg, factory: Factory, receiver: Receiver
) -> None:
    theirs_owner = await factory.account()
    theirs = await factory.organization(theirs_owner)
    foreign = await create_endpoint(client, theirs["id"], theirs_owner.headers, receiver.url)
    base = webhooks_url(roled_org.id)
    headers = roled_org.owner.headers
    for response in (
        await client.get(f"{base}/{foreign['id']}", headers=headers),
        await client.patch(f"{base}/{foreign['id']}", json={"enabled": False}, headers=headers),
        await client.delete(f"{base}/{foreign['id']}", headers=headers),
        await client.post(f"{base}/{foreign['id']}/rotate-secret", headers=headers),
        await client.get(f"{base}/{foreign['id']}/deliveries", headers=headers),
    ):
        assert_error(response, 404, "WEBHOOK_NOT_FOUND")
    still = await client.get(
        f"{webhooks_url(theirs['id'])}/{foreign['id']}", headers=theirs_owner.headers
    )
    assert still.json()["enabled"] is True


@pytest.mark.parametrize(
    "body",
    [
        {"url": PUBLIC_URL, "events": []},
        {"url": PUBLIC_URL, "events": ["member.added", "member.added"]},
        {"url": PUBLIC_URL, "events": ["member.exploded"]},
        {"url": PUBLIC_URL, "events": ["login.success"]},  # not a webhook event
        {"url": PUBLIC_URL, "events": [f"e{i}" for i in range(51)]},
        {"url": PUBLIC_URL, "events": ["*"], "description": "x" * 501},
        {"url": PUBLIC_URL, "events": ["*"], "description": "bell\x07"},
        {"url": PUBLIC_URL, "events": ["*"], "enabled": "sometimes"},
        {"url": PUBLIC_URL + "/" + "a" * 2048, "events": ["*"]},
        {"url": PUBLIC_URL, "events": ["*"], "secret": "whsec_mine"},
        {"events": ["*"]},
    ],
)
async def test_invalid_bodies_are_422(
    client: httpx.AsyncClient, roled_org: RoledOrg, body: dict[str, Any]
) -> None:
    response = await client.post(
        webhooks_url(roled_org.id), json=body, headers=roled_org.owner.headers
    )
    assert_validation_error(response)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "https://[::1]/hook",
        "https://10.0.0.5/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[fd00:ec2::254]/",
        "https://[::ffff:127.0.0.1]/",
        "https://100.64.0.1/",
        "https://localhost/hook",
        "https://api.localhost/hook",
        "https://loopback.example.com/hook",  # resolves to 127.0.0.1
        "https://mixed.example.com/hook",  # one public and one private address
        "ftp://hooks.example.com/",
        "https://user:pass@hooks.example.com/",
        "https://hooks.example.com/#fragment",
    ],
)
async def test_refused_addresses_and_shapes_are_webhook_url_not_allowed(
    client: httpx.AsyncClient, roled_org: RoledOrg, auth: OrgAuth, url: str
) -> None:
    _strict(
        auth,
        {
            "loopback.example.com": ["127.0.0.1"],
            "mixed.example.com": ["93.184.215.14", "10.1.2.3"],
        },
    )
    response = await client.post(
        webhooks_url(roled_org.id),
        json={"url": url, "events": ["*"]},
        headers=roled_org.owner.headers,
    )
    assert_error(response, 422, "WEBHOOK_URL_NOT_ALLOWED")
    assert "127.0.0.1" not in response.json()["detail"]["message"] or "127.0.0.1" in url


async def test_a_public_name_and_a_name_that_does_not_resolve_are_accepted(
    client: httpx.AsyncClient, roled_org: RoledOrg, auth: OrgAuth
) -> None:
    _strict(auth, {"hooks.example.com": ["93.184.215.14"]})
    for url in (PUBLIC_URL, "https://not-yet-in-dns.example.org/hook"):
        response = await client.post(
            webhooks_url(roled_org.id),
            json={"url": url, "events": ["*"]},
            headers=roled_org.owner.headers,
        )
        assert response.status_code == 201, response.text
        assert response.json()["url"] == url


async def test_update_checks_a_new_url_and_keeps_what_is_not_sent(
    client: httpx.AsyncClient, roled_org: RoledOrg, auth: OrgAuth, db: AsyncEngine
) -> None:
    _strict(auth, {"hooks.example.com": ["93.184.215.14"], "evil.example.com": ["10.0.0.1"]})
    endpoint = await create_endpoint(
        client, roled_org.id, roled_org.owner.headers, PUBLIC_URL, ["member.added"], description="d"
    )
    url = f"{webhooks_url(roled_org.id)}/{endpoint['id']}"
    headers = roled_org.owner.headers
    refused = await client.patch(url, json={"url": "https://evil.example.com/x"}, headers=headers)
    assert_error(refused, 422, "WEBHOOK_URL_NOT_ALLOWED")
    for nulled in ({"url": None}, {"events": None}, {"enabled": None}):
        assert_validation_error(await client.patch(url, json=nulled, headers=headers))

    changed = await client.patch(
        url, json={"events": ["*"], "description": None, "enabled": False}, headers=headers
    )
    assert changed.status_code == 200
    body = changed.json()
    assert (body["url"], body["events"], body["description"], body["enabled"]) == (
        PUBLIC_URL,
        ["*"],
        None,
        False,
    )
    [event] = await _audit_rows(db, "webhook.updated")
    assert event.event_metadata["fields"] == ["description", "enabled", "events"]
    assert event.event_metadata["url"] == PUBLIC_URL


async def test_at_most_twenty_endpoints_per_organization(
    client: httpx.AsyncClient, roled_org: RoledOrg, receiver: Receiver
) -> None:
    for _ in range(MAX_ENDPOINTS):
        await create_endpoint(client, roled_org.id, roled_org.owner.headers, receiver.url)
    response = await client.post(
        webhooks_url(roled_org.id),
        json={"url": receiver.url, "events": ["*"]},
        headers=roled_org.owner.headers,
    )
    assert_error(response, 409, "WEBHOOK_LIMIT_REACHED")
    listed = await client.get(
        f"{webhooks_url(roled_org.id)}?limit=100", headers=roled_org.owner.headers
    )
    assert listed.json()["pagination"]["total"] == MAX_ENDPOINTS


async def test_every_change_is_audited_without_the_secret(
    client: httpx.AsyncClient, roled_org: RoledOrg, receiver: Receiver, db: AsyncEngine
) -> None:
    endpoint = await create_endpoint(client, roled_org.id, roled_org.owner.headers, receiver.url)
    url = f"{webhooks_url(roled_org.id)}/{endpoint['id']}"
    headers = roled_org.owner.headers
    rotated = (await client.post(f"{url}/rotate-secret", headers=headers)).json()
    assert rotated["secret_rotated_at"] is not None
    await client.patch(url, json={"enabled": False}, headers=headers)
    await client.delete(url, headers=headers)
    rows = await _audit_rows(db, "webhook.")
    assert [row.action for row in rows] == [
        "webhook.created",
        "webhook.secret_rotated",
        "webhook.updated",
        "webhook.deleted",
    ]
    for row in rows:
        assert row.organization_id == roled_org.id
        assert row.targets == [{"type": "webhook_endpoint", "id": endpoint["id"]}]
        dumped = str(row.event_metadata)
        assert endpoint["secret"] not in dumped
        assert rotated["secret"] not in dumped
    gone = await client.get(url, headers=headers)
    assert_error(gone, 404, "WEBHOOK_NOT_FOUND")


async def test_a_malformed_delivery_id_is_not_found(
    client: httpx.AsyncClient, roled_org: RoledOrg, receiver: Receiver
) -> None:
    endpoint = await create_endpoint(client, roled_org.id, roled_org.owner.headers, receiver.url)
    base = f"{webhooks_url(roled_org.id)}/{endpoint['id']}/deliveries"
    for bad in ("msg_nothex", "x" * 300, str(uuid.uuid4())):
        response = await client.post(f"{base}/{bad}/redeliver", headers=roled_org.owner.headers)
        assert_error(response, 404, "DELIVERY_NOT_FOUND")
