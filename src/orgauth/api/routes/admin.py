"""/admin: the superuser API (docs/API.md). Every route requires a superuser (403 otherwise)."""

import uuid
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from orgauth.api.routes._pagination import LimitParam, PageParam, SearchParam
from orgauth.api.routes._responses import errors
from orgauth.api.routes.audit_logs import build_admin_audit_routes
from orgauth.api.routes.organizations import build_member_routes
from orgauth.models import User
from orgauth.representations import organization_read
from orgauth.schemas import (
    AdminOrganizationCreate,
    AdminSessionRead,
    AdminStats,
    AdminUserCreate,
    AdminUserUpdate,
    BulkAction,
    BulkActionResult,
    DailyCount,
    OrganizationRead,
    OrganizationStats,
    OrganizationUpdate,
    Page,
    Pagination,
    RevokedResponse,
    SessionStats,
    UserRead,
    UserStats,
)
from orgauth.services import admin as admin_service
from orgauth.services import organizations as org_service
from orgauth.services.admin import SortField
from orgauth.services.context import ClientInfo
from orgauth.services.organizations import Actor

if TYPE_CHECKING:
    from orgauth.extension import OrgAuth


def build_admin_router(auth: "OrgAuth") -> APIRouter:
    deps = auth.dependencies
    router = APIRouter(
        prefix="/admin",
        tags=["admin"],
        dependencies=[Depends(deps.current_superuser)],
        responses=errors(401, 403),
    )
    Db = Annotated[AsyncSession, Depends(deps.get_db)]
    Superuser = Annotated[User, Depends(deps.current_superuser)]
    Client = Annotated[ClientInfo, Depends(deps.get_client)]

    async def superuser_actor(user: Superuser, client: Client) -> Actor:
        return Actor.of(user, auth.catalog, client)

    AdminActor = Annotated[Actor, Depends(superuser_actor)]

    # --- users -------------------------------------------------------------------

    @router.get(
        "/users",
        response_model=Page[UserRead],
        summary="List users",
        operation_id="admin_list_users",
    )
    async def list_users(
        db: Db,
        page: PageParam = 1,
        limit: LimitParam = 20,
        search: SearchParam = None,
        is_active: bool | None = None,
        is_superuser: bool | None = None,
        sort_by: Annotated[SortField, Query()] = "created_at",
        sort_order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    ) -> Page[UserRead]:
        users, total = await admin_service.list_users(
            db,
            page=page,
            limit=limit,
            search=search,
            is_active=is_active,
            is_superuser=is_superuser,
            sort_by=sort_by,
            sort_order=sort_order,
        )
        return Page[UserRead](
            data=[UserRead.model_validate(u) for u in users],
            pagination=Pagination.of(total=total, page=page, page_size=limit),
        )

    @router.post(
        "/users",
        operation_id="admin_create_user",
        response_model=UserRead,
        status_code=status.HTTP_201_CREATED,
        responses=errors(409, 422),
        summary="Create a user",
    )
    async def create_user(body: AdminUserCreate, admin: Superuser, db: Db) -> UserRead:
        user = await admin_service.create_user(
            db,
            auth.context,
            actor_id=admin.id,
            email=body.email,
            password=body.password,
            first_name=body.first_name,
            last_name=body.last_name,
            is_active=body.is_active,
            is_superuser=body.is_superuser,
            email_verified=body.email_verified,
        )
        return UserRead.model_validate(user)

    @router.post(
        "/users/bulk-action",
        operation_id="admin_bulk_action",
        response_model=BulkActionResult,
        responses=errors(422),
        summary="Activate, deactivate or delete up to 100 users",
    )
    async def bulk(body: BulkAction, admin: Superuser, db: Db) -> BulkActionResult:
        result = await admin_service.bulk_action(
            db, actor_id=admin.id, action=body.action, user_ids=body.user_ids
        )
        return BulkActionResult(affected=result.affected, skipped_ids=result.skipped_ids)

    @router.get(
        "/users/{user_id}",
        response_model=UserRead,
        responses=errors(404, 422),
        summary="A user",
        operation_id="admin_get_user",
    )
    async def get_user(user_id: uuid.UUID, db: Db) -> UserRead:
        return UserRead.model_validate(await admin_service.get_user(db, user_id))

    @router.patch(
        "/users/{user_id}",
        operation_id="admin_update_user",
        response_model=UserRead,
        responses=errors(404, 409, 422),
        summary="Update a user (deactivation signs them out everywhere)",
    )
    async def update_user(
        user_id: uuid.UUID, body: AdminUserUpdate, admin: Superuser, db: Db
    ) -> UserRead:
        changes = body.model_dump(include=body.model_fields_set)
        user = await admin_service.update_user(
            db, actor_id=admin.id, user_id=user_id, changes=changes
        )
        return UserRead.model_validate(user)

    @router.delete(
        "/users/{user_id}",
        operation_id="admin_delete_user",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=errors(404, 409, 422),
        summary="Delete a user with their sessions and memberships",
    )
    async def delete_user(user_id: uuid.UUID, admin: Superuser, db: Db) -> Response:
        await admin_service.delete_user(db, actor_id=admin.id, user_id=user_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.delete(
        "/users/{user_id}/sessions",
        operation_id="admin_revoke_user_sessions",
        response_model=RevokedResponse,
        responses=errors(404, 422),
        summary="Revoke every session of a user",
    )
    async def revoke_sessions(user_id: uuid.UUID, admin: Superuser, db: Db) -> RevokedResponse:
        revoked = await admin_service.revoke_sessions(db, actor_id=admin.id, user_id=user_id)
        return RevokedResponse(revoked=revoked)

    # --- sessions ----------------------------------------------------------------

    @router.get(
        "/sessions",
        response_model=Page[AdminSessionRead],
        summary="List sessions",
        operation_id="admin_list_sessions",
    )
    async def list_sessions(
        db: Db,
        page: PageParam = 1,
        limit: LimitParam = 20,
        user_id: uuid.UUID | None = None,
        active: bool | None = None,
    ) -> Page[AdminSessionRead]:
        rows, total = await admin_service.list_sessions(
            db,
            page=page,
            limit=limit,
            user_id=user_id,
            active=active,
            policy=auth.context.session_policy,
        )
        return Page[AdminSessionRead](
            data=[AdminSessionRead.model_validate(row) for row in rows],
            pagination=Pagination.of(total=total, page=page, page_size=limit),
        )

    # --- organizations -----------------------------------------------------------

    @router.get(
        "/organizations",
        response_model=Page[OrganizationRead],
        summary="List organizations",
        operation_id="admin_list_organizations",
    )
    async def list_organizations(
        db: Db, page: PageParam = 1, limit: LimitParam = 20, search: SearchParam = None
    ) -> Page[OrganizationRead]:
        views, total = await org_service.list_organizations(
            db, page=page, limit=limit, search=search
        )
        return Page[OrganizationRead](
            data=[organization_read(v) for v in views],
            pagination=Pagination.of(total=total, page=page, page_size=limit),
        )

    @router.post(
        "/organizations",
        operation_id="admin_create_organization",
        response_model=OrganizationRead,
        status_code=status.HTTP_201_CREATED,
        responses=errors(404, 409, 422),
        summary="Create an organization (owner: owner_id, default yourself)",
    )
    async def create_organization(
        body: AdminOrganizationCreate, admin: Superuser, actor: AdminActor, db: Db
    ) -> OrganizationRead:
        view = await org_service.create_organization(
            db,
            name=body.name,
            slug=body.slug,
            description=body.description,
            owner_id=body.owner_id or admin.id,
            actor=actor,
            hooks=auth.hooks,
        )
        return organization_read(view)

    @router.get(
        "/organizations/{org_id}",
        operation_id="admin_get_organization",
        response_model=OrganizationRead,
        responses=errors(404, 422),
        summary="An organization",
    )
    async def get_organization(org_id: uuid.UUID, actor: AdminActor, db: Db) -> OrganizationRead:
        view = await org_service.get_organization(db, actor, org_id)
        return organization_read(view)

    @router.patch(
        "/organizations/{org_id}",
        operation_id="admin_update_organization",
        response_model=OrganizationRead,
        responses=errors(404, 409, 422),
        summary="Update an organization",
    )
    async def update_organization(
        org_id: uuid.UUID, body: OrganizationUpdate, actor: AdminActor, db: Db
    ) -> OrganizationRead:
        changes = body.model_dump(include=body.model_fields_set)
        view = await org_service.update_organization(db, actor, org_id, changes)
        return organization_read(view)

    @router.delete(
        "/organizations/{org_id}",
        operation_id="admin_delete_organization",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=errors(404, 422),
        summary="Delete an organization",
    )
    async def delete_organization(org_id: uuid.UUID, actor: AdminActor, db: Db) -> Response:
        await org_service.delete_organization(db, actor, org_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    members = APIRouter(prefix="/organizations")
    # The admin API is the operators' own tool: its direct adds are not rate-limited
    # (docs/SECURITY.md, "Adding members"); the member limit still applies.
    build_member_routes(
        members,
        auth,
        superuser_actor,
        operation_prefix="admin_organizations",
        count_direct_adds=False,
    )
    router.include_router(members)
    build_admin_audit_routes(router, auth, superuser_actor)

    # --- stats -------------------------------------------------------------------

    @router.get(
        "/stats",
        response_model=AdminStats,
        summary="Counts, computed in SQL",
        operation_id="admin_stats",
    )
    async def stats(db: Db) -> AdminStats:
        result = await admin_service.stats(db, auth.context.session_policy)
        return AdminStats(
            users=UserStats(
                total=result.users_total, active=result.users_active, superusers=result.superusers
            ),
            organizations=OrganizationStats(total=result.organizations),
            sessions=SessionStats(active=result.active_sessions),
            registrations_last_30_days=[
                DailyCount(date=day, count=count) for day, count in result.registrations
            ],
        )

    return router
