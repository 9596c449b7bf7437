"""/organizations/{org_id}/roles and /permissions: custom roles and the catalog
(docs/API.md)."""

import uuid
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from orgauth.api.routes._responses import errors
from orgauth.lengths import ROLE_MAX_LENGTH
from orgauth.representations import role_read
from orgauth.schemas import PermissionRead, RoleCreate, RoleRead, RoleUpdate
from orgauth.services import roles as role_service
from orgauth.services.organizations import Actor

if TYPE_CHECKING:
    from orgauth.extension import OrgAuth

RoleKeyPath = Annotated[str, Path(max_length=ROLE_MAX_LENGTH)]


def build_role_routes(router: APIRouter, auth: "OrgAuth", actor_dependency: Any) -> None:
    """Add the role and permission routes to the /organizations router."""
    Db = Annotated[AsyncSession, Depends(auth.dependencies.get_db)]
    ActorDep = Annotated[Actor, Depends(actor_dependency)]

    @router.get(
        "/{org_id}/roles",
        operation_id="organizations_list_roles",
        response_model=list[RoleRead],
        responses=errors(401, 403, 404, 422),
        summary="Roles: owner, admin, member, then custom roles by key",
    )
    async def list_roles(org_id: uuid.UUID, actor: ActorDep, db: Db) -> list[RoleRead]:
        return [role_read(v) for v in await role_service.list_roles(db, actor, org_id)]

    @router.post(
        "/{org_id}/roles",
        operation_id="organizations_create_role",
        response_model=RoleRead,
        status_code=status.HTTP_201_CREATED,
        responses=errors(401, 403, 404, 409, 422),
        summary="Create a custom role (only with permissions you hold)",
    )
    async def create_role(org_id: uuid.UUID, body: RoleCreate, actor: ActorDep, db: Db) -> RoleRead:
        view = await role_service.create_role(
            db,
            actor,
            org_id,
            key=body.key,
            name=body.name,
            description=body.description,
            permissions=body.permissions,
        )
        return role_read(view)

    @router.patch(
        "/{org_id}/roles/{role_key}",
        operation_id="organizations_update_role",
        response_model=RoleRead,
        responses=errors(401, 403, 404, 409, 422),
        summary="Update a custom role",
    )
    async def update_role(
        org_id: uuid.UUID, role_key: RoleKeyPath, body: RoleUpdate, actor: ActorDep, db: Db
    ) -> RoleRead:
        changes = body.model_dump(include=body.model_fields_set)
        return role_read(await role_service.update_role(db, actor, org_id, role_key, changes))

    @router.delete(
        "/{org_id}/roles/{role_key}",
        operation_id="organizations_delete_role",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=errors(401, 403, 404, 409, 422),
        summary="Delete a custom role nobody holds",
    )
    async def delete_role(
        org_id: uuid.UUID, role_key: RoleKeyPath, actor: ActorDep, db: Db
    ) -> Response:
        await role_service.delete_role(db, actor, org_id, role_key)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.get(
        "/{org_id}/permissions",
        operation_id="organizations_list_permissions",
        response_model=list[PermissionRead],
        responses=errors(401, 403, 404, 422),
        summary="The permission catalog, sorted by key",
    )
    async def list_permissions(org_id: uuid.UUID, actor: ActorDep, db: Db) -> list[PermissionRead]:
        catalog = await role_service.list_permissions(db, actor, org_id)
        return [
            PermissionRead(key=p.key, description=p.description, built_in=built_in)
            for p, built_in in catalog
        ]
