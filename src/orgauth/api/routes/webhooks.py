"""Webhook endpoints and their deliveries (docs/API.md, "Webhooks"), under
``/organizations/{org_id}/webhooks``; every route needs ``webhooks:manage``."""

import json
import uuid
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from orgauth.api.routes._pagination import LimitParam, PageParam
from orgauth.api.routes._responses import NO_STORE, errors
from orgauth.models import WebhookDelivery, WebhookEndpoint
from orgauth.schemas import (
    DeliveryStatus,
    Page,
    Pagination,
    WebhookDeliveryRead,
    WebhookEndpointCreate,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
    WebhookEndpointWithSecret,
)
from orgauth.services import webhooks as webhook_service
from orgauth.services.organizations import Actor
from orgauth.services.webhooks import CreatedSecret
from orgauth.webhooks.outbox import delivery_id

if TYPE_CHECKING:
    from orgauth.extension import OrgAuth


def delivery_read(row: WebhookDelivery) -> WebhookDeliveryRead:
    return WebhookDeliveryRead(
        id=delivery_id(row.id),
        event_id=f"evt_{row.event_id.hex}",
        event_type=row.event_type,
        status=row.status,
        attempts=row.attempts,
        created_at=row.created_at,
        last_attempt_at=row.last_attempt_at,
        next_attempt_at=row.next_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
        payload=json.loads(row.payload),
    )


def _with_secret(created: CreatedSecret, response: Response) -> WebhookEndpointWithSecret:
    response.headers.update(NO_STORE)
    read = WebhookEndpointRead.model_validate(created.endpoint)
    return WebhookEndpointWithSecret(**read.model_dump(), secret=created.secret)


def _endpoint_page(
    rows: list[WebhookEndpoint], total: int, page: int, limit: int
) -> Page[WebhookEndpointRead]:
    return Page[WebhookEndpointRead](
        data=[WebhookEndpointRead.model_validate(row) for row in rows],
        pagination=Pagination.of(total=total, page=page, page_size=limit),
    )


def build_webhook_routes(router: APIRouter, auth: "OrgAuth", actor_dependency: object) -> None:
    """Add the webhook routes to the /organizations router."""
    Db = Annotated[AsyncSession, Depends(auth.dependencies.get_db)]
    ActorDep = Annotated[Actor, Depends(actor_dependency)]

    @router.post(
        "/{org_id}/webhooks",
        operation_id="organizations_create_webhook",
        response_model=WebhookEndpointWithSecret,
        status_code=status.HTTP_201_CREATED,
        responses=errors(401, 403, 404, 409, 422),
        summary="Add a webhook endpoint (its secret is shown only in this answer)",
    )
    async def create(
        org_id: uuid.UUID,
        body: WebhookEndpointCreate,
        actor: ActorDep,
        db: Db,
        response: Response,
    ) -> WebhookEndpointWithSecret:
        created = await webhook_service.create_endpoint(
            db,
            actor,
            org_id,
            auth.webhook_rules,
            url=body.url,
            event_types=body.events,
            description=body.description,
            enabled=body.enabled,
        )
        return _with_secret(created, response)

    @router.get(
        "/{org_id}/webhooks",
        operation_id="organizations_list_webhooks",
        response_model=Page[WebhookEndpointRead],
        responses=errors(401, 403, 404, 422),
        summary="The organization's webhook endpoints, newest first",
    )
    async def list_endpoints(
        org_id: uuid.UUID,
        actor: ActorDep,
        db: Db,
        page: PageParam = 1,
        limit: LimitParam = 20,
    ) -> Page[WebhookEndpointRead]:
        rows, total = await webhook_service.list_endpoints(
            db, actor, org_id, page=page, limit=limit
        )
        return _endpoint_page(rows, total, page, limit)

    @router.get(
        "/{org_id}/webhooks/{endpoint_id}",
        operation_id="organizations_get_webhook",
        response_model=WebhookEndpointRead,
        responses=errors(401, 403, 404, 422),
        summary="One webhook endpoint",
    )
    async def get_endpoint(
        org_id: uuid.UUID, endpoint_id: uuid.UUID, actor: ActorDep, db: Db
    ) -> WebhookEndpointRead:
        row = await webhook_service.get_endpoint(db, actor, org_id, endpoint_id)
        return WebhookEndpointRead.model_validate(row)

    @router.patch(
        "/{org_id}/webhooks/{endpoint_id}",
        operation_id="organizations_update_webhook",
        response_model=WebhookEndpointRead,
        responses=errors(401, 403, 404, 422),
        summary="Change a webhook endpoint's URL, events, description or state",
    )
    async def update_endpoint(
        org_id: uuid.UUID,
        endpoint_id: uuid.UUID,
        body: WebhookEndpointUpdate,
        actor: ActorDep,
        db: Db,
    ) -> WebhookEndpointRead:
        changes = body.model_dump(exclude_unset=True)
        row = await webhook_service.update_endpoint(
            db, actor, org_id, endpoint_id, auth.webhook_rules, changes
        )
        return WebhookEndpointRead.model_validate(row)

    @router.delete(
        "/{org_id}/webhooks/{endpoint_id}",
        operation_id="organizations_delete_webhook",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=errors(401, 403, 404, 422),
        summary="Delete a webhook endpoint and its undelivered deliveries",
    )
    async def delete_endpoint(
        org_id: uuid.UUID, endpoint_id: uuid.UUID, actor: ActorDep, db: Db
    ) -> Response:
        await webhook_service.delete_endpoint(db, actor, org_id, endpoint_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post(
        "/{org_id}/webhooks/{endpoint_id}/rotate-secret",
        operation_id="organizations_rotate_webhook_secret",
        response_model=WebhookEndpointWithSecret,
        responses=errors(401, 403, 404, 422),
        summary="Replace the signing secret; the old one also signs for 24 hours",
    )
    async def rotate_secret(
        org_id: uuid.UUID,
        endpoint_id: uuid.UUID,
        actor: ActorDep,
        db: Db,
        response: Response,
    ) -> WebhookEndpointWithSecret:
        created = await webhook_service.rotate_secret(
            db, actor, org_id, endpoint_id, auth.webhook_rules
        )
        return _with_secret(created, response)

    @router.get(
        "/{org_id}/webhooks/{endpoint_id}/deliveries",
        operation_id="organizations_list_webhook_deliveries",
        response_model=Page[WebhookDeliveryRead],
        responses=errors(401, 403, 404, 422),
        summary="The endpoint's deliveries, newest first",
    )
    async def list_deliveries(
        org_id: uuid.UUID,
        endpoint_id: uuid.UUID,
        actor: ActorDep,
        db: Db,
        page: PageParam = 1,
        limit: LimitParam = 20,
        status: Annotated[DeliveryStatus | None, Query()] = None,
    ) -> Page[WebhookDeliveryRead]:
        rows, total = await webhook_service.list_deliveries(
            db, actor, org_id, endpoint_id, page=page, limit=limit, status=status
        )
        return Page[WebhookDeliveryRead](
            data=[delivery_read(row) for row in rows],
            pagination=Pagination.of(total=total, page=page, page_size=limit),
        )

    @router.post(
        "/{org_id}/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver",
        operation_id="organizations_redeliver_webhook",
        response_model=WebhookDeliveryRead,
        status_code=status.HTTP_202_ACCEPTED,
        responses=errors(401, 403, 404, 409, 422),
        summary="Send a finished delivery again (same webhook-id and body)",
    )
    async def redeliver(
        org_id: uuid.UUID,
        endpoint_id: uuid.UUID,
        delivery_id: str,
        actor: ActorDep,
        db: Db,
    ) -> WebhookDeliveryRead:
        row = await webhook_service.redeliver(
            db, actor, org_id, endpoint_id, _delivery_uuid(delivery_id)
        )
        return delivery_read(row)


def _delivery_uuid(value: str) -> uuid.UUID:
    """``msg_`` + 32 hex (as listed) or the bare UUID; anything else is no such delivery."""
    text = value.removeprefix("msg_")
    try:
        return uuid.UUID(hex=text) if len(text) == 32 else uuid.UUID(text)
    except ValueError:
        raise webhook_service.delivery_not_found() from None
