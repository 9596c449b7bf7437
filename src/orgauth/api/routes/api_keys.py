"""Organization API keys (docs/API.md, "API keys"), under
``/organizations/{org_id}/api-keys``; every route needs ``api_keys:manage``."""

import uuid
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from orgauth.api.routes._pagination import LimitParam, PageParam
from orgauth.api.routes._responses import NO_STORE, errors
from orgauth.representations import api_key_read
from orgauth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead, ApiKeyStatus, Page, Pagination
from orgauth.services import api_keys as api_key_service
from orgauth.services.organizations import Actor

if TYPE_CHECKING:
    from orgauth.extension import OrgAuth


def build_api_key_routes(router: APIRouter, auth: "OrgAuth", actor_dependency: object) -> None:
    """Add the API key routes to the /organizations router."""
    Db = Annotated[AsyncSession, Depends(auth.dependencies.get_db)]
    ActorDep = Annotated[Actor, Depends(actor_dependency)]

    @router.post(
        "/{org_id}/api-keys",
        operation_id="organizations_create_api_key",
        response_model=ApiKeyCreated,
        status_code=status.HTTP_201_CREATED,
        responses=errors(401, 403, 404, 409, 422),
        summary="Create an API key (the key is shown only in this answer)",
    )
    async def create(
        org_id: uuid.UUID, body: ApiKeyCreate, actor: ActorDep, db: Db, response: Response
    ) -> ApiKeyCreated:
        created = await api_key_service.create_api_key(
            db,
            actor,
            org_id,
            name=body.name,
            permissions=body.permissions,
            expires_in_days=body.expires_in_days,
        )
        response.headers.update(NO_STORE)
        return ApiKeyCreated(**api_key_read(created.view).model_dump(), key=created.key)

    @router.get(
        "/{org_id}/api-keys",
        operation_id="organizations_list_api_keys",
        response_model=Page[ApiKeyRead],
        responses=errors(401, 403, 404, 422),
        summary="The organization's API keys, newest first",
    )
    async def list_keys(
        org_id: uuid.UUID,
        actor: ActorDep,
        db: Db,
        page: PageParam = 1,
        limit: LimitParam = 20,
        status: Annotated[ApiKeyStatus | None, Query()] = None,
    ) -> Page[ApiKeyRead]:
        views, total = await api_key_service.list_api_keys(
            db, actor, org_id, page=page, limit=limit, status=status
        )
        return Page[ApiKeyRead](
            data=[api_key_read(view) for view in views],
            pagination=Pagination.of(total=total, page=page, page_size=limit),
        )

    @router.post(
        "/{org_id}/api-keys/{key_id}/revoke",
        operation_id="organizations_revoke_api_key",
        response_model=ApiKeyRead,
        responses=errors(401, 403, 404, 422),
        summary="Revoke an API key (a revoked key is answered unchanged)",
    )
    async def revoke(org_id: uuid.UUID, key_id: uuid.UUID, actor: ActorDep, db: Db) -> ApiKeyRead:
        view = await api_key_service.revoke_api_key(db, actor, org_id, key_id)
        return api_key_read(view)
