"""/organizations: tenants, roles and members (docs/API.md)."""

import uuid
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from orgauth.api.routes._pagination import LimitParam, PageParam, SearchParam
from orgauth.api.routes._responses import errors
from orgauth.api.routes.api_keys import build_api_key_routes
from orgauth.api.routes.audit_logs import build_organization_audit_routes
from orgauth.api.routes.invitations import build_invitation_routes
from orgauth.api.routes.roles import build_role_routes
from orgauth.api.routes.webhooks import build_webhook_routes
from orgauth.lengths import ROLE_MAX_LENGTH
from orgauth.models import User
from orgauth.representations import member_read, organization_read
from orgauth.schemas import (
    MemberAdd,
    MemberRead,
    MemberRoleUpdate,
    MyOrganizationRead,
    OrganizationCreate,
    OrganizationRead,
    OrganizationUpdate,
    OwnershipTransfer,
    OwnershipTransferRead,
    Page,
    Pagination,
)
from orgauth.services import organizations as org_service
from orgauth.services.context import ClientInfo
from orgauth.services.organizations import Actor, DirectAddRules

if TYPE_CHECKING:
    from orgauth.extension import OrgAuth


def build_member_routes(
    router: APIRouter,
    auth: "OrgAuth",
    actor_dependency: object,
    *,
    operation_prefix: str,
    count_direct_adds: bool,
) -> None:
    """Member routes shared by /organizations and /admin/organizations; their OpenAPI
    operation ids start with ``operation_prefix``. With ``count_direct_adds`` each add
    counts against the caller's ``RATE_LIMIT_INVITE`` (docs/SECURITY.md, "Adding
    members")."""
    deps = auth.dependencies

    def direct_add_rules() -> DirectAddRules:
        return DirectAddRules(
            enabled=auth.settings.org_direct_add,
            max_members=auth.settings.org_max_members,
            limits=auth.account_limits if count_direct_adds else None,
        )

    Db = Annotated[AsyncSession, Depends(deps.get_db)]
    ActorDep = Annotated[Actor, Depends(actor_dependency)]

    @router.get(
        "/{org_id}/members",
        operation_id=f"{operation_prefix}_list_members",
        response_model=Page[MemberRead],
        responses=errors(401, 403, 404, 422),
        summary="List members",
    )
    async def list_members(
        org_id: uuid.UUID,
        actor: ActorDep,
        db: Db,
        page: PageParam = 1,
        limit: LimitParam = 20,
        role: Annotated[str | None, Query(max_length=ROLE_MAX_LENGTH)] = None,
        search: SearchParam = None,
    ) -> Page[MemberRead]:
        await org_service.require_permission_in(db, actor, org_id, "members:read")
        members, total = await org_service.list_members(
            db, auth.catalog, org_id=org_id, page=page, limit=limit, role=role, search=search
        )
        return Page[MemberRead](
            data=[member_read(m) for m in members],
            pagination=Pagination.of(total=total, page=page, page_size=limit),
        )

    @router.post(
        "/{org_id}/members",
        operation_id=f"{operation_prefix}_add_member",
        response_model=MemberRead,
        status_code=status.HTTP_201_CREATED,
        responses=errors(401, 403, 404, 409, 422, 429),
        summary="Add an existing user as a member",
    )
    async def add_member(org_id: uuid.UUID, body: MemberAdd, actor: ActorDep, db: Db) -> MemberRead:
        member = await org_service.add_member(
            db,
            actor,
            org_id,
            role=body.role,
            rules=direct_add_rules(),
            user_id=body.user_id,
            email=body.email,
            hooks=auth.hooks,
        )
        return member_read(member)

    @router.patch(
        "/{org_id}/members/{user_id}",
        operation_id=f"{operation_prefix}_change_member_role",
        response_model=MemberRead,
        responses=errors(401, 403, 404, 409, 422),
        summary="Change a member's role",
    )
    async def change_role(
        org_id: uuid.UUID, user_id: uuid.UUID, body: MemberRoleUpdate, actor: ActorDep, db: Db
    ) -> MemberRead:
        member = await org_service.change_role(db, actor, org_id, user_id, body.role)
        return member_read(member)

    @router.delete(
        "/{org_id}/members/{user_id}",
        operation_id=f"{operation_prefix}_remove_member",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=errors(401, 403, 404, 409, 422),
        summary="Remove a member, or leave (your own user id)",
    )
    async def remove_member(
        org_id: uuid.UUID, user_id: uuid.UUID, actor: ActorDep, db: Db
    ) -> Response:
        await org_service.remove_member(db, actor, org_id, user_id, hooks=auth.hooks)
        return Response(status_code=status.HTTP_204_NO_CONTENT)


def build_organizations_router(auth: "OrgAuth") -> APIRouter:
    deps = auth.dependencies
    router = APIRouter(prefix="/organizations", tags=["organizations"])
    Db = Annotated[AsyncSession, Depends(deps.get_db)]
    CurrentUser = Annotated[User, Depends(deps.current_user)]
    Client = Annotated[ClientInfo, Depends(deps.get_client)]

    # Routes open to API keys take ActorDep; those that need a person's session take
    # PersonDep (403 API_KEY_NOT_ALLOWED for a key of this organization, 404 for another's).
    ActorDep = Annotated[Actor, Depends(deps.principal_actor)]
    PersonDep = Annotated[Actor, Depends(deps.org_user_actor)]
    UserActor = Annotated[Actor, Depends(deps.user_actor)]

    @router.post(
        "",
        operation_id="organizations_create",
        response_model=OrganizationRead,
        status_code=status.HTTP_201_CREATED,
        responses=errors(401, 403, 409, 422),
        summary="Create an organization (you become its owner)",
    )
    async def create(
        body: OrganizationCreate, user: CurrentUser, db: Db, client: Client
    ) -> OrganizationRead:
        view = await org_service.create_organization(
            db,
            name=body.name,
            slug=body.slug,
            description=body.description,
            owner_id=user.id,
            actor=Actor.of(user, auth.catalog, client),
            hooks=auth.hooks,
            users_may_create=auth.settings.allow_user_org_creation,
        )
        return organization_read(view)

    @router.get(
        "/me",
        operation_id="organizations_list_mine",
        response_model=list[MyOrganizationRead],
        responses=errors(401),
        summary="My organizations, with my role",
    )
    async def mine(actor: UserActor, db: Db) -> list[MyOrganizationRead]:
        views = await org_service.list_my_organizations(db, actor)
        return [
            MyOrganizationRead(
                **organization_read(v).model_dump(),
                role=v.role or "",
                permissions=sorted(v.permissions),
            )
            for v in views
        ]

    @router.get(
        "/{org_id}",
        operation_id="organizations_get",
        response_model=OrganizationRead,
        responses=errors(401, 404, 422),
        summary="An organization I belong to",
    )
    async def read(org_id: uuid.UUID, actor: ActorDep, db: Db) -> OrganizationRead:
        view = await org_service.require_permission_in(db, actor, org_id, "organization:read")
        return organization_read(view)

    @router.patch(
        "/{org_id}",
        operation_id="organizations_update",
        response_model=OrganizationRead,
        responses=errors(401, 403, 404, 409, 422),
        summary="Update an organization (admins and owners)",
    )
    async def patch(
        org_id: uuid.UUID, body: OrganizationUpdate, actor: ActorDep, db: Db
    ) -> OrganizationRead:
        changes = body.model_dump(include=body.model_fields_set)
        view = await org_service.update_organization(db, actor, org_id, changes)
        return organization_read(view)

    @router.delete(
        "/{org_id}",
        operation_id="organizations_delete",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=errors(401, 403, 404, 422),
        summary="Delete an organization (owners)",
    )
    async def remove(org_id: uuid.UUID, actor: PersonDep, db: Db) -> Response:
        await org_service.delete_organization(db, actor, org_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post(
        "/{org_id}/transfer-ownership",
        operation_id="organizations_transfer_ownership",
        response_model=OwnershipTransferRead,
        responses=errors(401, 403, 404, 409, 422),
        summary="Make a member an owner and step down to admin (owners)",
    )
    async def transfer_ownership(
        org_id: uuid.UUID, body: OwnershipTransfer, actor: PersonDep, db: Db
    ) -> OwnershipTransferRead:
        transfer = await org_service.transfer_ownership(db, actor, org_id, body.user_id)
        previous = transfer.previous_owner
        return OwnershipTransferRead(
            owner=member_read(transfer.owner),
            previous_owner=member_read(previous) if previous is not None else None,
        )

    build_member_routes(
        router,
        auth,
        deps.principal_actor,
        operation_prefix="organizations",
        count_direct_adds=True,
    )
    build_role_routes(router, auth, deps.principal_actor)
    build_invitation_routes(router, auth, deps.principal_actor)
    build_organization_audit_routes(router, auth, deps.principal_actor)
    build_webhook_routes(router, auth, deps.principal_actor)
    build_api_key_routes(router, auth, deps.org_user_actor)
    return router
