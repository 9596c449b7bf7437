"""The outbox and the delivery worker against a real local receiver: what is enqueued
with which change, what arrives, how it is signed, retried and recorded."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from orgauth.extension import OrgAuth
from orgauth.models import WebhookDelivery, WebhookEndpoint, utcnow
from orgauth.settings import OrgAuthSettings
from tests.support.http import API, ClientFactory, assert_error, execute
from tests.support.orgs import Factory, RoledOrg
from tests.support.webhooks import Receiver, create_endpoint, deliveries, webhooks_url


async def _member_added(client: httpx.AsyncClient, org: RoledOrg, factory: Factory) -> uuid.UUID:
    newcomer = await factory.account()
    response = await client.post(
        f"{org.url}/members", json={"user_id": str(newcomer.id)}, headers=org.owner.headers
    )
    assert response.status_code == 201, response.text
    return newcomer.id


async def test_a_member_added_arrives_signed_with_the_api_member_object(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    receiver: Receiver,
    auth: OrgAuth,
) -> None:
    endpoint = await create_endpoint(
        client, roled_org.id, roled_org.owner.headers, receiver.url, ["member.added"]
    )
    newcomer = await _member_added(client, roled_org, factory)

    tally = await auth.webhook_worker().deliver_due()

    assert (tally.attempted, tally.succeeded) == (1, 1)
    [hit] = receiver.received
    # The standardwebhooks reference verifies the signature with the endpoint's secret.
    body = Webhook(endpoint["secret"]).verify(hit.body, hit.headers)
    assert body["type"] == "member.added"
    assert body["organization_id"] == str(roled_org.id)
    assert body["actor"] == {"type": "user", "id": str(roled_org.owner.id), "impersonator_id": None}
    assert body["data"]["source"] == "direct"
    member = body["data"]["member"]
    listed = await client.get(f"{roled_org.url}/members", headers=roled_org.owner.headers)
    [as_listed] = [m for m in listed.json()["data"] if m["user_id"] == str(newcomer)]
    assert member == as_listed
    assert body["id"].startswith("evt_")
    assert len(body["id"]) == 36
    assert hit.headers["content-type"] == "application/json"
    assert hit.headers["user-agent"] == "orgauth-webhooks"
    assert hit.webhook_id.startswith("msg_")
    assert len(hit.webhook_id) == 36
    # Compact JSON, exactly the stored payload.
    assert b", " not in hit.body
    assert b": " not in hit.body
    assert abs(int(hit.headers["webhook-timestamp"]) - utcnow().timestamp()) < 30
    # A wrong secret does not verify.
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(hit.body, hit.headers)


async def test_a_rolled_back_change_enqueues_nothing(
    client: httpx.AsyncClient, roled_org: RoledOrg, receiver: Receiver, db: AsyncEngine
) -> None:
    await create_endpoint(client, roled_org.id, roled_org.owner.headers, receiver.url)
    # Demoting the last owner is refused after the change began: the transaction rolls back.
    response = await client.patch(
        roled_org.member_url(roled_org.owner.id),
        json={"role": "member"},
        headers=roled_org.owner.headers,
    )
    assert response.status_code == 409
    assert await deliveries(db) == []


async def test_only_subscribed_enabled_endpoints_of_the_organization_get_a_row(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    receiver: Receiver,
    db: AsyncEngine,
) -> None:
    wants = await create_endpoint(
        client, roled_org.id, roled_org.owner.headers, receiver.url, ["member.added"]
    )
    await create_endpoint(
        client, roled_org.id, roled_org.owner.headers, receiver.url, ["role.created"]
    )
    await create_endpoint(
        client, roled_org.id, roled_org.owner.headers, receiver.url, ["*"], enabled=False
    )
    other_owner = await factory.account()
    other = await factory.organization(other_owner)
    await create_endpoint(client, other["id"], other_owner.headers, receiver.url)

    await _member_added(client, roled_org, factory)

    [row] = await deliveries(db)
    assert str(row.endpoint_id) == wants["id"]
    assert row.event_type == "member.added"
    assert row.status == "pending"
    assert row.attempts == 0


async def test_retries_follow_the_schedule_then_succeed_with_the_same_id_and_body(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    receiver: Receiver,
    auth: OrgAuth,
    db: AsyncEngine,
) -> None:
    await create_endpoint(client, roled_org.id, roled_org.owner.headers, receiver.url)
    receiver.script = [500, 503]
    await _member_added(client, roled_org, factory)
    worker = auth.webhook_worker()

    started = time.monotonic()
    first = await worker.deliver_due()
    attempt_took = time.monotonic() - started
    [row] = await deliveries(db)
    assert (first.failed, row.status, row.attempts) == (1, "pending", 1)
    assert (row.last_status_code, row.last_error) == (500, "http_status")
    assert row.next_attempt_at is not None
    assert row.last_attempt_at is not None
    # Due the first entry (0.2 s) plus at most 10 % jitter after the failure, which came
    # at most ``attempt_took`` after the attempt started (``last_attempt_at``).
    delay = (row.next_attempt_at - row.last_attempt_at).total_seconds()
    assert 0.2 <= delay <= 0.22 + attempt_took

    assert (await worker.deliver_due()).attempted == 0  # not due yet
    await asyncio.sleep(0.3)
    await worker.deliver_due()
    await asyncio.sleep(0.3)
    third = await worker.deliver_due()
    await worker.aclose()

    [row] = await deliveries(db)
    assert (third.succeeded, row.status, row.attempts, row.last_status_code) == (
        1,
        "succeeded",
        3,
        200,
    )
    assert row.delivered_at is not None
    assert row.last_error is None
    assert len(receiver.received) == 3
    assert len({hit.webhook_id for hit in receiver.received}) == 1
    assert len({hit.body for hit in receiver.received}) == 1


async def test_after_the_last_retry_the_delivery_is_failed(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    receiver: Receiver,
    auth: OrgAuth,
    db: AsyncEngine,
) -> None:
    await create_endpoint(client, roled_org.id, roled_org.owner.headers, receiver.url)
    receiver.default = 302  # a redirect is a failure, and is not followed
    await _member_added(client, roled_org, factory)
    worker = auth.webhook_worker()
    for _ in range(3):
        await worker.deliver_due()
        await asyncio.sleep(0.3)
    await worker.aclose()

    [row] = await deliveries(db)
    assert (row.status, row.attempts, row.last_error, row.next_attempt_at) == (
        "failed",
        3,
        "redirect",
        None,
    )
    assert len(receiver.received) == 3


async def test_a_restart_in_the_middle_of_the_schedule_carries_on(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    receiver: Receiver,
    settings: OrgAuthSettings,
    db: AsyncEngine,
) -> None:
    await create_endpoint(client, roled_org.id, roled_org.owner.headers, receiver.url)
    receiver.script = [500]
    await _member_added(client, roled_org, factory)
    before = OrgAuth(settings)  # a server process with its own engine and worker
    assert (await before.webhook_worker().deliver_due()).failed == 1
    await before.shutdown()  # it stops with a retry scheduled

    await asyncio.sleep(0.3)
    after = OrgAuth(settings)  # the next process picks the schedule up from the database
    tally = await after.webhook_worker().deliver_due()
    await after.shutdown()

    [row] = await deliveries(db)
    assert (tally.succeeded, row.status, row.attempts) == (1, "succeeded", 2)
    assert len({hit.webhook_id for hit in receiver.received}) == 1


async def test_a_worker_that_dies_mid_send_leaves_a_lease_that_expires(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    receiver: Receiver,
    auth: OrgAuth,
    db: AsyncEngine,
) -> None:
    await create_endpoint(client, roled_org.id, roled_org.owner.headers, receiver.url)
    await _member_added(client, roled_org, factory)
    receiver.delay = 1.5
    crashed = auth.webhook_worker()
    task = asyncio.create_task(crashed.deliver_batch())
    await asyncio.to_thread(receiver.wait_for, 1)
    task.cancel()  # the process dies after sending, before recording anything
    with pytest.raises(asyncio.CancelledError):
        await task
    await crashed.aclose()
    receiver.delay = 0

    [row] = await deliveries(db)
    assert row.status == "pending"
    assert row.lock_token is not None
    other = auth.webhook_worker()
    assert (await other.deliver_due()).attempted == 0  # the lease still holds
    # Time passes beyond the lease (timeout + 30 s).
    await execute(
        db,
        update(WebhookDelivery).values(locked_until=utcnow() - timedelta(seconds=1)),
    )
    assert (await other.deliver_due()).succeeded == 1
    await other.aclose()
    # At least once: the receiver saw the same webhook-id twice and can deduplicate.
    ids = [hit.webhook_id for hit in receiver.received]
    assert len(ids) == 2
    assert len(set(ids)) == 1


async def test_a_disabled_endpoint_holds_its_pending_deliveries(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    receiver: Receiver,
    auth: OrgAuth,
) -> None:
    endpoint = await create_endpoint(client, roled_org.id, roled_org.owner.headers, receiver.url)
    await _member_added(client, roled_org, factory)
    url = f"{webhooks_url(roled_org.id)}/{endpoint['id']}"
    await client.patch(url, json={"enabled": False}, headers=roled_org.owner.headers)
    worker = auth.webhook_worker()
    assert (await worker.deliver_due()).attempted == 0
    await client.patch(url, json={"enabled": True}, headers=roled_org.owner.headers)
    assert (await worker.deliver_due()).succeeded == 1
    await worker.aclose()


async def test_organization_deleted_is_still_sent_after_its_endpoints_are_gone(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    receiver: Receiver,
    auth: OrgAuth,
    db: AsyncEngine,
) -> None:
    endpoint = await create_endpoint(
        client, roled_org.id, roled_org.owner.headers, receiver.url, ["organization.deleted"]
    )
    response = await client.delete(roled_org.url, headers=roled_org.owner.headers)
    assert response.status_code == 204

    tally = await auth.webhook_worker().deliver_due()

    assert tally.succeeded == 1
    [hit] = receiver.received
    body = Webhook(endpoint["secret"]).verify(hit.body, hit.headers)
    assert body["type"] == "organization.deleted"
    assert body["data"]["organization"]["id"] == str(roled_org.id)
    assert body["data"]["organization"]["slug"] == roled_org.slug


async def test_deleting_an_endpoint_drops_its_undelivered_deliveries(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    receiver: Receiver,
    db: AsyncEngine,
) -> None:
    endpoint = await create_endpoint(client, roled_org.id, roled_org.owner.headers, receiver.url)
    await _member_added(client, roled_org, factory)
    assert len(await deliveries(db)) == 1
    response = await client.delete(
        f"{webhooks_url(roled_org.id)}/{endpoint['id']}", headers=roled_org.owner.headers
    )
    assert response.status_code == 204
    assert await deliveries(db) == []


async def test_after_a_rotation_both_secrets_sign_for_a_day(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    receiver: Receiver,
    auth: OrgAuth,
    db: AsyncEngine,
) -> None:
    endpoint = await create_endpoint(client, roled_org.id, roled_org.owner.headers, receiver.url)
    rotated = await client.post(
        f"{webhooks_url(roled_org.id)}/{endpoint['id']}/rotate-secret",
        headers=roled_org.owner.headers,
    )
    assert rotated.status_code == 200
    assert rotated.headers["cache-control"] == "no-store"
    new_secret = rotated.json()["secret"]
    assert new_secret != endpoint["secret"]
    assert new_secret.startswith("whsec_")
    await _member_added(client, roled_org, factory)
    worker = auth.webhook_worker()
    await worker.deliver_due()

    [hit] = receiver.received
    new_signature, old_signature = hit.headers["webhook-signature"].split(" ")
    assert new_signature.startswith("v1,")
    assert old_signature.startswith("v1,")
    for secret in (new_secret, endpoint["secret"]):  # either verifies
        Webhook(secret).verify(hit.body, hit.headers)
    only_new = dict(hit.headers, **{"webhook-signature": new_signature})
    Webhook(new_secret).verify(hit.body, only_new)
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(hit.body, only_new)

    # A day later only the new secret signs.
    await execute(
        db,
        update(WebhookEndpoint).values(previous_secret_expires_at=utcnow() - timedelta(seconds=1)),
    )
    await _member_added(client, roled_org, factory)
    await worker.deliver_due()
    await worker.aclose()
    latest = receiver.received[-1]
    assert " " not in latest.headers["webhook-signature"]
    Webhook(new_secret).verify(latest.body, latest.headers)


async def test_the_secret_is_stored_only_encrypted(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    receiver: Receiver,
    db: AsyncEngine,
) -> None:
    endpoint = await create_endpoint(client, roled_org.id, roled_org.owner.headers, receiver.url)
    await _member_added(client, roled_org, factory)
    secret = endpoint["secret"]
    key_part = secret.removeprefix("whsec_")
    async with db.connect() as connection:
        for table in ("webhook_endpoints", "webhook_deliveries", "audit_events"):
            rows = (await connection.execute(text(f"SELECT * FROM {table}"))).all()  # noqa: S608
            dumped = json.dumps([list(map(str, row)) for row in rows])
            assert secret not in dumped
            assert key_part not in dumped
    listed = await client.get(webhooks_url(roled_org.id), headers=roled_org.owner.headers)
    assert "secret" not in listed.json()["data"][0]


async def test_a_secret_sealed_under_another_key_fails_with_a_clear_reason(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    receiver: Receiver,
    settings: OrgAuthSettings,
    db: AsyncEngine,
) -> None:
    await create_endpoint(client, roled_org.id, roled_org.owner.headers, receiver.url)
    await _member_added(client, roled_org, factory)
    changed = settings.model_copy(
        update={"encryption_key": SecretStr("another-encryption-key-0123456789abcdef")}
    )
    other = OrgAuth(changed)
    tally = await other.webhook_worker().deliver_due()
    await other.shutdown()
    [row] = await deliveries(db)
    assert tally.failed == 1
    assert row.last_error == "secret_unreadable"
    assert receiver.received == []


async def test_deliveries_listing_and_redeliver(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    receiver: Receiver,
    auth: OrgAuth,
) -> None:
    endpoint = await create_endpoint(client, roled_org.id, roled_org.owner.headers, receiver.url)
    await _member_added(client, roled_org, factory)
    base = f"{webhooks_url(roled_org.id)}/{endpoint['id']}/deliveries"
    [pending] = (await client.get(base, headers=roled_org.owner.headers)).json()["data"]
    assert pending["status"] == "pending"
    refused = await client.post(
        f"{base}/{pending['id']}/redeliver", headers=roled_org.owner.headers
    )
    assert_error(refused, 409, "DELIVERY_PENDING")

    worker = auth.webhook_worker()
    await worker.deliver_due()
    listed = await client.get(f"{base}?status=succeeded", headers=roled_org.owner.headers)
    [done] = listed.json()["data"]
    assert done["id"] == pending["id"]
    assert done["attempts"] == 1
    assert done["payload"]["type"] == "member.added"
    assert done["event_id"] == done["payload"]["id"]

    again = await client.post(f"{base}/{done['id']}/redeliver", headers=roled_org.owner.headers)
    assert again.status_code == 202
    assert (again.json()["status"], again.json()["attempts"]) == ("pending", 0)
    await worker.deliver_due()
    await worker.aclose()
    assert [hit.webhook_id for hit in receiver.received] == [done["id"], done["id"]]
    assert receiver.received[0].body == receiver.received[1].body

    unknown = await client.post(
        f"{base}/msg_{uuid.uuid4().hex}/redeliver", headers=roled_org.owner.headers
    )
    assert_error(unknown, 404, "DELIVERY_NOT_FOUND")


async def test_the_lifespan_worker_delivers_without_being_asked(
    make_app: ClientFactory, factory: Factory, receiver: Receiver
) -> None:
    custom = await make_app(
        webhook_delivery_enabled=True,
        webhook_allow_private_urls=True,
        webhook_poll_interval_seconds=0.1,
    )
    owner = await factory.account(client=custom.client)
    created = await custom.client.post(
        f"{API}/organizations", json={"name": "Hooked"}, headers=owner.headers
    )
    org_id = created.json()["id"]
    await create_endpoint(custom.client, org_id, owner.headers, receiver.url)
    await custom.client.patch(
        f"{API}/organizations/{org_id}", json={"name": "Renamed"}, headers=owner.headers
    )
    [hit] = await asyncio.to_thread(receiver.wait_for, 1)
    body = hit.json
    assert body["type"] == "organization.updated"
    assert body["data"]["changed"] == ["name"]
    assert body["data"]["organization"]["name"] == "Renamed"
