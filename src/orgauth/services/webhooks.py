"""Webhook endpoints and their deliveries: the organization's side (docs/API.md,
"Webhooks"). Sending lives in :mod:`orgauth.webhooks.worker`."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from orgauth import events
from orgauth.errors import ConflictError, ErrorCode, NotFoundError, UnprocessableError
from orgauth.events import record
from orgauth.models import (
    DELIVERY_PENDING,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from orgauth.security.encryption import SecretBox
from orgauth.services.organizations import Actor, acting_grant, lock_organization, org_not_found
from orgauth.services.permissions import require_permission
from orgauth.settings import OrgAuthSettings
from orgauth.webhooks.addresses import Resolver, UrlNotAllowed, check_webhook_url, system_resolver

MANAGE = "webhooks:manage"
MAX_ENDPOINTS = 20
#: How long the previous secret keeps signing after a rotation.
ROTATION_OVERLAP = timedelta(hours=24)
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """``whsec_`` + standard base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class WebhookRules:
    """What the settings say about endpoint URLs and how secrets are sealed."""

    allow_http: bool
    allow_private: bool
    box: SecretBox
    resolver: Resolver = system_resolver

    @classmethod
    def of(cls, settings: OrgAuthSettings, resolver: Resolver = system_resolver) -> WebhookRules:
        return cls(
            allow_http=not settings.is_production,
            allow_private=settings.webhook_allow_private_urls,
            box=SecretBox(settings.encryption_master_key, "webhook"),
            resolver=resolver,
        )

    async def checked_url(self, url: str) -> str:
        """The stored form of ``url``; 422 ``WEBHOOK_URL_NOT_ALLOWED`` when the address
        rules refuse it (docs/SECURITY.md, "Webhooks and SSRF")."""
        try:
            checked = await check_webhook_url(
                url,
                allow_http=self.allow_http,
                allow_private=self.allow_private,
                resolver=self.resolver,
            )
        except UrlNotAllowed as exc:
            raise UnprocessableError(
                f"Webhook URL not allowed: {exc.reason}", code=ErrorCode.WEBHOOK_URL_NOT_ALLOWED
            ) from None
        return checked.url


@dataclass(frozen=True)
class CreatedSecret:
    """An endpoint with its plaintext secret: the one answer that shows it."""

    endpoint: WebhookEndpoint
    secret: str


def webhook_not_found() -> NotFoundError:
    return NotFoundError("Webhook endpoint not found.", code=ErrorCode.WEBHOOK_NOT_FOUND)


def delivery_not_found() -> NotFoundError:
    return NotFoundError("Delivery not found.", code=ErrorCode.DELIVERY_NOT_FOUND)


async def _require_manager(db: AsyncSession, actor: Actor, org_id: uuid.UUID) -> None:
    require_permission(await acting_grant(db, actor, org_id), MANAGE)


async def _lock_for_change(db: AsyncSession, actor: Actor, org_id: uuid.UUID) -> None:
    """Lock the organization and check the right again under the lock."""
    if not await lock_organization(db, org_id):
        raise org_not_found()
    await _require_manager(db, actor, org_id)


async def _endpoint(db: AsyncSession, org_id: uuid.UUID, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    row = await db.scalar(
        select(WebhookEndpoint).where(
            col(WebhookEndpoint.id) == endpoint_id,
            col(WebhookEndpoint.organization_id) == org_id,
        )
    )
    if row is None:
        raise webhook_not_found()
    return row


def _event_fields(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {"targets": [events.webhook_endpoint(endpoint.id)], "url": endpoint.url}


async def create_endpoint(
    db: AsyncSession,
    actor: Actor,
    org_id: uuid.UUID,
    rules: WebhookRules,
    *,
    url: str,
    event_types: Sequence[str],
    description: str | None,
    enabled: bool,
) -> CreatedSecret:
    """A new endpoint with a fresh secret; at most 20 per organization (409)."""
    await _require_manager(db, actor, org_id)  # 404 / 403 before the URL is looked at
    stored_url = await rules.checked_url(url)  # resolves: done before any lock is held
    await _lock_for_change(db, actor, org_id)
    count = await db.scalar(
        select(func.count()).where(col(WebhookEndpoint.organization_id) == org_id)
    )
    if int(count or 0) >= MAX_ENDPOINTS:
        raise ConflictError(
            f"An organization can have at most {MAX_ENDPOINTS} webhook endpoints.",
            code=ErrorCode.WEBHOOK_LIMIT_REACHED,
        )
    now = utcnow()
    endpoint_id = uuid.uuid4()
    secret = new_secret()
    endpoint = WebhookEndpoint(
        id=endpoint_id,
        organization_id=org_id,
        url=stored_url,
        description=description,
        events=list(event_types),
        enabled=enabled,
        secret_encrypted=rules.box.seal(secret, owner=str(endpoint_id)),
        created_by=actor.user_id,
        created_at=now,
        updated_at=now,
    )
    db.add(endpoint)
    record(db, "webhook.created", **actor.events(org_id), **_event_fields(endpoint))
    await db.commit()
    return CreatedSecret(endpoint, secret)


async def list_endpoints(
    db: AsyncSession, actor: Actor, org_id: uuid.UUID, *, page: int, limit: int
) -> tuple[list[WebhookEndpoint], int]:
    await _require_manager(db, actor, org_id)
    condition = col(WebhookEndpoint.organization_id) == org_id
    total = await db.scalar(select(func.count()).select_from(WebhookEndpoint).where(condition))
    rows = await db.scalars(
        select(WebhookEndpoint)
        .where(condition)
        .order_by(col(WebhookEndpoint.created_at).desc(), col(WebhookEndpoint.id).desc())
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return list(rows), int(total or 0)


async def get_endpoint(
    db: AsyncSession, actor: Actor, org_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    await _require_manager(db, actor, org_id)
    return await _endpoint(db, org_id, endpoint_id)


async def update_endpoint(
    db: AsyncSession,
    actor: Actor,
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    rules: WebhookRules,
    changes: dict[str, Any],
) -> WebhookEndpoint:
    """Change url, events, description or enabled; a new URL is checked like at creation."""
    await _require_manager(db, actor, org_id)
    await _endpoint(db, org_id, endpoint_id)
    values = dict(changes)
    if "url" in values:
        values["url"] = await rules.checked_url(values["url"])
    if "events" in values:
        values["events"] = list(values["events"])
    await _lock_for_change(db, actor, org_id)
    endpoint = await _endpoint(db, org_id, endpoint_id)
    for name, value in values.items():
        setattr(endpoint, name, value)
    endpoint.updated_at = utcnow()
    record(
        db,
        "webhook.updated",
        **actor.events(org_id),
        **_event_fields(endpoint),
        fields=sorted(changes),
    )
    await db.commit()
    await db.refresh(endpoint)
    return endpoint


async def delete_endpoint(
    db: AsyncSession, actor: Actor, org_id: uuid.UUID, endpoint_id: uuid.UUID
) -> None:
    """Delete the endpoint and, in the same transaction, its undelivered deliveries."""
    await _lock_for_change(db, actor, org_id)
    endpoint = await _endpoint(db, org_id, endpoint_id)
    await db.execute(
        delete(WebhookDelivery).where(
            col(WebhookDelivery.endpoint_id) == endpoint_id,
            col(WebhookDelivery.status) == DELIVERY_PENDING,
        )
    )
    record(db, "webhook.deleted", **actor.events(org_id), **_event_fields(endpoint))
    await db.delete(endpoint)
    await db.commit()


async def rotate_secret(
    db: AsyncSession,
    actor: Actor,
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    rules: WebhookRules,
) -> CreatedSecret:
    """A new secret; the current one keeps signing beside it for 24 hours."""
    await _lock_for_change(db, actor, org_id)
    endpoint = await _endpoint(db, org_id, endpoint_id)
    now = utcnow()
    secret = new_secret()
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
    endpoint.secret_encrypted = rules.box.seal(secret, owner=str(endpoint.id))
    endpoint.secret_rotated_at = now
    endpoint.updated_at = now
    record(db, "webhook.secret_rotated", **actor.events(org_id), **_event_fields(endpoint))
    await db.commit()
    await db.refresh(endpoint)
    return CreatedSecret(endpoint, secret)


async def list_deliveries(
    db: AsyncSession,
    actor: Actor,
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    *,
    page: int,
    limit: int,
    status: str | None,
) -> tuple[list[WebhookDelivery], int]:
    await _require_manager(db, actor, org_id)
    await _endpoint(db, org_id, endpoint_id)
    conditions = [col(WebhookDelivery.endpoint_id) == endpoint_id]
    if status is not None:
        conditions.append(col(WebhookDelivery.status) == status)
    total = await db.scalar(select(func.count()).select_from(WebhookDelivery).where(*conditions))
    rows = await db.scalars(
        select(WebhookDelivery)
        .where(*conditions)
        .order_by(col(WebhookDelivery.created_at).desc(), col(WebhookDelivery.id).desc())
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return list(rows), int(total or 0)


async def redeliver(
    db: AsyncSession,
    actor: Actor,
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    delivery_id: uuid.UUID,
) -> WebhookDelivery:
    """Send a finished delivery again: pending, no attempts, due now, same id and body;
    409 ``DELIVERY_PENDING`` while it is still pending."""
    await _lock_for_change(db, actor, org_id)
    endpoint = await _endpoint(db, org_id, endpoint_id)
    now = utcnow()
    # One conditional UPDATE: a delivery a worker is finishing right now stays as it is.
    claimed = await db.execute(
        update(WebhookDelivery)
        .where(
            col(WebhookDelivery.id) == delivery_id,
            col(WebhookDelivery.endpoint_id) == endpoint_id,
            col(WebhookDelivery.status) != DELIVERY_PENDING,
        )
        .values(
            status=DELIVERY_PENDING,
            attempts=0,
            next_attempt_at=now,
            locked_until=None,
            lock_token=None,
            delivered_at=None,
        )
        .returning(col(WebhookDelivery.id))
        .execution_options(synchronize_session=False)
    )
    if claimed.scalar_one_or_none() is None:
        exists = await db.scalar(
            select(func.count()).where(
                col(WebhookDelivery.id) == delivery_id,
                col(WebhookDelivery.endpoint_id) == endpoint_id,
            )
        )
        await db.rollback()
        if not exists:
            raise delivery_not_found()
        raise ConflictError("The delivery is still pending.", code=ErrorCode.DELIVERY_PENDING)
    record(
        db,
        "webhook.redelivery_requested",
        **actor.events(org_id),
        targets=[events.webhook_endpoint(endpoint.id), events.webhook_delivery(delivery_id)],
        url=endpoint.url,
    )
    await db.commit()
    row = await db.scalar(
        select(WebhookDelivery)
        .where(col(WebhookDelivery.id) == delivery_id)
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return row
