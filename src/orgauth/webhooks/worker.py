"""The delivery worker: claims due outbox rows under a lease, sends them outside any
transaction and records each result while its lease holds (docs/ARCHITECTURE.md,
"Webhooks").

Several workers, in one process or many, never send one attempt twice: a row is claimed
in a short transaction (on PostgreSQL the due rows are selected ``FOR UPDATE SKIP
LOCKED`` first; on SQLite one conditional ``UPDATE`` runs under the database's write lock),
which sets ``locked_until`` and a fresh ``lock_token`` only on rows still pending and
unleased. A worker that dies mid-send leaves a lease that expires, and the attempt is
made again: delivery is at least once, and receivers deduplicate on ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from orgauth.models import (
    DELIVERY_FAILED,
    DELIVERY_PENDING,
    DELIVERY_SUCCEEDED,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from orgauth.security.encryption import DecryptionError, SecretBox
from orgauth.settings import OrgAuthSettings
from orgauth.webhooks import signing
from orgauth.webhooks.addresses import (
    Resolver,
    UrlNotAllowed,
    parse_webhook_url,
    system_resolver,
)
from orgauth.webhooks.outbox import delivery_id
from orgauth.webhooks.transport import AttemptResult, WebhookTransport

logger = logging.getLogger("orgauth.webhooks")

#: Added to the attempt timeout for a claim's lease: time to record the result.
LEASE_MARGIN = timedelta(seconds=30)
#: Retry delays get up to this much more, at random, so failures do not come back in step.
MAX_JITTER = 0.10
#: ``last_error`` when the stored secret cannot be opened (the encryption key changed).
SECRET_UNREADABLE = "secret_unreadable"


@dataclass(frozen=True)
class Claimed:
    """One claimed delivery with what its attempt needs."""

    id: uuid.UUID
    attempts: int
    url: str
    payload: str
    secrets: list[str]


@dataclass
class Tally:
    """Attempts made and how they ended."""

    succeeded: int = 0
    failed: int = 0

    @property
    def attempted(self) -> int:
        return self.succeeded + self.failed

    def add(self, other: Tally) -> None:
        self.succeeded += other.succeeded
        self.failed += other.failed


@dataclass
class WebhookWorker:
    """Delivers due webhooks from the outbox of the database behind ``sessionmaker``."""

    sessionmaker: async_sessionmaker[AsyncSession]
    settings: OrgAuthSettings
    resolver: Resolver = system_resolver
    ssl_context: ssl.SSLContext | None = None
    batch_size: int = 100
    concurrency: int = 50
    _transport: WebhookTransport | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._box = SecretBox(self.settings.encryption_master_key, "webhook")
        self._lease = timedelta(seconds=self.settings.webhook_timeout_seconds) + LEASE_MARGIN

    @property
    def transport(self) -> WebhookTransport:
        if self._transport is None:
            self._transport = WebhookTransport(
                timeout_seconds=self.settings.webhook_timeout_seconds,
                allow_private=self.settings.webhook_allow_private_urls,
                max_connections=self.concurrency,
                resolver=self.resolver,
                ssl_context=self.ssl_context,
            )
        return self._transport

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None

    # --- running -------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver until cancelled: a full batch is followed at once by the next, else the
        worker sleeps ``WEBHOOK_POLL_INTERVAL_SECONDS``. Database outages are logged and
        waited out."""
        interval = self.settings.webhook_poll_interval_seconds
        try:
            while True:
                try:
                    claimed = await self.deliver_batch()
                except Exception as exc:  # keep delivering once the database is back
                    logger.warning("webhook delivery failed", extra={"error": type(exc).__name__})
                    claimed = 0
                if claimed < self.batch_size:
                    await asyncio.sleep(interval)
        finally:
            await self.aclose()

    async def deliver_due(self) -> Tally:
        """One attempt of every delivery due now (``orgauth webhooks deliver --once``)."""
        due_by = utcnow()
        total = Tally()
        while True:
            tally = Tally()
            claimed = await self.deliver_batch(due_by=due_by, tally=tally)
            total.add(tally)
            if claimed == 0:
                return total

    async def deliver_batch(
        self, *, due_by: datetime | None = None, tally: Tally | None = None
    ) -> int:
        """Claim up to ``batch_size`` due deliveries, attempt them concurrently (at most
        ``concurrency`` at once) and record the results. Returns how many were claimed."""
        token = uuid.uuid4()
        claimed = await self._claim(token, due_by or utcnow())
        if not claimed:
            return 0
        gate = asyncio.Semaphore(self.concurrency)

        async def attempt(item: Claimed) -> tuple[Claimed, AttemptResult, datetime]:
            async with gate:
                started = utcnow()
                return item, await self._attempt(item, started), started

        results = await asyncio.gather(*(attempt(item) for item in claimed))
        counts = await self._record(token, results)
        if tally is not None:
            tally.add(counts)
        return len(claimed)

    # --- the three steps ------------------------------------------------------------

    async def _claim(self, token: uuid.UUID, due_by: datetime) -> list[Claimed]:
        now = utcnow()
        free = or_(
            col(WebhookDelivery.locked_until).is_(None), col(WebhookDelivery.locked_until) < now
        )
        # An existing endpoint that is disabled holds its deliveries back.
        held_back = exists().where(
            col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id),
            col(WebhookEndpoint.enabled).is_(False),
        )
        due = (
            select(col(WebhookDelivery.id))
            .where(
                col(WebhookDelivery.status) == DELIVERY_PENDING,
                col(WebhookDelivery.next_attempt_at) <= due_by,
                free,
                ~held_back,
            )
            .order_by(col(WebhookDelivery.next_attempt_at))
            .limit(self.batch_size)
            .with_for_update(skip_locked=True, of=WebhookDelivery)
        )
        claim = (
            update(WebhookDelivery)
            .where(col(WebhookDelivery.status) == DELIVERY_PENDING, free)
            .values(locked_until=now + self._lease, lock_token=token)
            .returning(col(WebhookDelivery.id))
            .execution_options(synchronize_session=False)
        )
        async with self.sessionmaker() as db:
            connection = await db.connection()
            if connection.dialect.name == "postgresql":
                # Lock first, then update the locked rows: as one UPDATE … WHERE id IN
                # (subquery), PostgreSQL may run the LIMITed SKIP LOCKED subquery once per
                # row and claim far more than a batch.
                candidates = list((await db.execute(due)).scalars())
                claim = claim.where(col(WebhookDelivery.id).in_(candidates))
            else:
                # SQLite: one statement under the write lock (a SELECT first would make
                # the UPDATE upgrade a read transaction, which fails when another wrote).
                claim = claim.where(col(WebhookDelivery.id).in_(due.scalar_subquery()))
            ids = list((await db.execute(claim)).scalars())
            if not ids:
                await db.rollback()
                return []
            rows: Sequence[Any] = (
                await db.execute(
                    select(
                        col(WebhookDelivery.id),
                        col(WebhookDelivery.endpoint_id),
                        col(WebhookDelivery.attempts),
                        col(WebhookDelivery.url),
                        col(WebhookDelivery.payload),
                        col(WebhookDelivery.secret_encrypted),
                        col(WebhookEndpoint.url).label("current_url"),
                        col(WebhookEndpoint.secret_encrypted).label("current_secret"),
                        col(WebhookEndpoint.previous_secret_encrypted).label("previous_secret"),
                        col(WebhookEndpoint.previous_secret_expires_at).label("previous_until"),
                    )
                    .outerjoin(
                        WebhookEndpoint,
                        col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id),
                    )
                    .where(col(WebhookDelivery.id).in_(ids))
                )
            ).all()
            await db.commit()
        return [self._prepared(row, now) for row in rows]

    def _prepared(self, row: Any, now: datetime) -> Claimed:
        """The URL and secrets to use: the endpoint's current ones while it exists, else
        the snapshot taken when the event was enqueued."""
        owner = str(row.endpoint_id)
        current = row.current_secret
        sealed = [current] if current is not None else [row.secret_encrypted]
        previous_until = row.previous_until
        if current is not None and row.previous_secret and previous_until and previous_until > now:
            sealed.append(row.previous_secret)
        try:
            secrets = [self._box.open(value, owner=owner) for value in sealed]
        except DecryptionError:
            secrets = []
        return Claimed(
            id=row.id,
            attempts=row.attempts,
            url=row.current_url or row.url,
            payload=row.payload,
            secrets=secrets,
        )

    async def _attempt(self, item: Claimed, started: datetime) -> AttemptResult:
        if not item.secrets:
            logger.warning(
                "webhook secret cannot be decrypted with the key in force; rotate the "
                "endpoint's secret",
                extra={"delivery_id": str(item.id)},
            )
            return AttemptResult(status_code=None, error=SECRET_UNREADABLE)
        try:
            url = parse_webhook_url(item.url, allow_http=not self.settings.is_production)
        except UrlNotAllowed:
            return AttemptResult(status_code=None, error="blocked_address")
        msg_id = delivery_id(item.id)
        headers = signing.headers(item.secrets, msg_id=msg_id, timestamp=started, body=item.payload)
        return await self.transport.post(url, headers=headers, body=item.payload.encode())

    async def _record(
        self, token: uuid.UUID, results: Sequence[tuple[Claimed, AttemptResult, datetime]]
    ) -> Tally:
        """Write every result in one statement, each only while this claim's lease holds."""
        schedule = self.settings.webhook_retry_schedule
        tally = Tally()
        now = utcnow()
        params: list[dict[str, object]] = []
        for item, result, started in results:
            attempts = item.attempts + 1
            status = DELIVERY_SUCCEEDED
            next_at: datetime | None = None
            delivered: datetime | None = now
            if result.succeeded:
                tally.succeeded += 1
            else:
                tally.failed += 1
                delivered = None
                if attempts <= len(schedule):
                    delay = schedule[attempts - 1] * (1 + random.uniform(0, MAX_JITTER))  # noqa: S311
                    status, next_at = DELIVERY_PENDING, now + timedelta(seconds=delay)
                else:
                    status = DELIVERY_FAILED
                    logger.warning(
                        "webhook delivery failed for good",
                        extra={"delivery_id": str(item.id), "error": result.error},
                    )
            params.append(
                {
                    "b_id": item.id,
                    "b_status": status,
                    "b_attempts": attempts,
                    "b_next": next_at,
                    "b_last": started,
                    "b_code": result.status_code,
                    "b_error": result.error,
                    "b_delivered": delivered,
                }
            )
        table = WebhookDelivery.__table__  # type: ignore[attr-defined]
        # A Core executemany: one round trip for the batch.
        statement = (
            update(table)
            .where(and_(table.c.id == bindparam("b_id"), table.c.lock_token == token))
            .values(
                status=bindparam("b_status"),
                attempts=bindparam("b_attempts"),
                next_attempt_at=bindparam("b_next"),
                last_attempt_at=bindparam("b_last"),
                last_status_code=bindparam("b_code"),
                last_error=bindparam("b_error"),
                delivered_at=bindparam("b_delivered"),
                locked_until=None,
                lock_token=None,
            )
        )
        async with self.sessionmaker() as db:
            connection = await db.connection()
            await connection.execute(statement, params)
            await db.commit()
        return tally
