"""Several workers draining one outbox never send one attempt twice: two workers with
their own engines in one process (both databases), and two ``orgauth serve`` processes
whose lifespan workers share a PostgreSQL outbox."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx
import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook

from orgauth.extension import OrgAuth
from orgauth.models import WebhookDelivery, WebhookEndpoint, utcnow
from orgauth.settings import OrgAuthSettings
from orgauth.webhooks.outbox import delivery_id
from tests.support.http import fetch
from tests.support.orgs import RoledOrg
from tests.support.servers import ServerFactory, server_environment
from tests.support.settings import TEST_SECRET_KEY, is_postgres_run
from tests.support.webhooks import Receiver, create_endpoint, deliveries


async def _enqueue(db: AsyncEngine, endpoint_id: str, org_id: uuid.UUID, count: int) -> None:
    """``count`` due deliveries to the endpoint, as the outbox writes them."""
    [(url, sealed)] = await fetch(
        db,
        select(WebhookEndpoint.url, WebhookEndpoint.secret_encrypted).where(
            WebhookEndpoint.id == uuid.UUID(endpoint_id)
        ),
    )
    now = utcnow()
    rows = [
        {
            "id": uuid.uuid4(),
            "endpoint_id": uuid.UUID(endpoint_id),
            "organization_id": org_id,
            "event_id": uuid.uuid4(),
            "event_type": "member.added",
            "payload": f'{{"id":"evt_{i:032x}","type":"member.added","data":{{}}}}',
            "url": url,
            "secret_encrypted": sealed,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for i in range(count)
    ]
    async with db.begin() as connection:
        await connection.execute(insert(WebhookDelivery), rows)


def _assert_each_sent_once(receiver: Receiver, count: int) -> None:
    sent = Counter(hit.webhook_id for hit in receiver.received)
    assert len(sent) == count
    assert max(sent.values()) == 1, [key for key, seen in sent.items() if seen > 1][:5]


async def test_two_workers_with_their_own_engines_never_send_one_attempt_twice(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    receiver: Receiver,
    settings: OrgAuthSettings,
    db: AsyncEngine,
) -> None:
    endpoint = await create_endpoint(client, roled_org.id, roled_org.owner.headers, receiver.url)
    await _enqueue(db, endpoint["id"], roled_org.id, 150)
    receiver.delay = 0.002
    # A generous timeout: on a loaded machine an attempt may be slow, not refused.
    patient = settings.model_copy(update={"webhook_timeout_seconds": 10})
    first, second = OrgAuth(patient), OrgAuth(patient)
    workers = [first.webhook_worker(), second.webhook_worker()]
    for worker in workers:
        worker.batch_size = 20
    try:
        for _ in range(20):  # a failed attempt is retried 0.2 s later
            await asyncio.gather(*(worker.deliver_due() for worker in workers))
            rows = await deliveries(db)
            if all(row.status == "succeeded" for row in rows):
                break
            await asyncio.sleep(0.3)
    finally:
        for auth, worker in zip((first, second), workers, strict=True):
            await worker.aclose()
            await auth.shutdown()
    assert {row.status for row in rows} == {"succeeded"}
    sent = Counter(hit.webhook_id for hit in receiver.received)
    assert set(sent) == {delivery_id(row.id) for row in rows}
    # Never more requests for a delivery than attempts recorded for it: no attempt was
    # sent by both workers.
    assert all(sent[delivery_id(row.id)] <= row.attempts for row in rows)


@pytest.mark.slow
@pytest.mark.skipif(
    not is_postgres_run(),
    reason="needs PostgreSQL shared by two server processes: set ORGAUTH_TEST_DATABASE_URL",
)
async def test_two_server_processes_drain_one_outbox_without_a_duplicate_attempt(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    receiver: Receiver,
    database_url: str,
    server_factory: ServerFactory,
    db: AsyncEngine,
) -> None:
    endpoint = await create_endpoint(client, roled_org.id, roled_org.owner.headers, receiver.url)
    environment = server_environment(
        database_url=database_url,
        secret_key=TEST_SECRET_KEY,  # the same key seals and opens the endpoint's secret
        log_level="WARNING",
        webhook_delivery_enabled="true",
        webhook_allow_private_urls="true",
        webhook_poll_interval_seconds="0.1",
    )
    server_factory.start(environment, count=2)
    receiver.delay = 0.005
    total = 400
    await _enqueue(db, endpoint["id"], roled_org.id, total)

    await asyncio.to_thread(receiver.wait_for, total, 60)
    for _ in range(200):  # the results are recorded just after the last answer
        rows = await deliveries(db)
        if all(row.status == "succeeded" for row in rows):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # anything sent twice would have arrived by now

    _assert_each_sent_once(receiver, total)
    assert {(row.status, row.attempts) for row in rows} == {("succeeded", 1)}
    sample = receiver.received[0]
    Webhook(endpoint["secret"]).verify(sample.body, sample.headers)
    for server in server_factory.servers:
        assert server.stop() == 0, server.errors()
