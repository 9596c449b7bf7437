"""Invitations (docs/API.md): the organization side under
``/organizations/{org_id}/invitations`` and the invitee side under ``/invitations``."""

import uuid
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, BackgroundTasks, Body, Depends, Query, status
from sqlalchemy.ext.asyncio import AsyncSession

from orgauth.api.routes._pagination import LimitParam, PageParam
from orgauth.api.routes._responses import errors
from orgauth.errors import AuthenticationError, ErrorCode
from orgauth.models import User
from orgauth.representations import invitation_read, member_read
from orgauth.schemas import (
    InvitationAccepted,
    InvitationAnswer,
    InvitationCreate,
    InvitationRead,
    InvitationResend,
    InvitationStatus,
    Page,
    Pagination,
)
from orgauth.services import invitations as invitation_service
from orgauth.services.context import ClientInfo
from orgauth.services.invitations import InvitationView
from orgauth.services.organizations import Actor

if TYPE_CHECKING:
    from orgauth.extension import OrgAuth


def _page(views: list[InvitationView], total: int, page: int, limit: int) -> Page[InvitationRead]:
    return Page[InvitationRead](
        data=[invitation_read(view) for view in views],
        pagination=Pagination.of(total=total, page=page, page_size=limit),
    )


def build_invitation_routes(router: APIRouter, auth: "OrgAuth", actor_dependency: object) -> None:
    """The organization side, added to the /organizations router."""
    deps = auth.dependencies
    ctx = auth.context
    Db = Annotated[AsyncSession, Depends(deps.get_db)]
    ActorDep = Annotated[Actor, Depends(actor_dependency)]
    # The inviter named in the email: the user, or an API key's creator.
    Inviter = Annotated[User, Depends(deps.acting_person)]

    @router.post(
        "/{org_id}/invitations",
        operation_id="organizations_create_invitation",
        response_model=InvitationRead,
        status_code=status.HTTP_201_CREATED,
        responses=errors(401, 403, 404, 409, 422, 429),
        summary="Invite an email address (same answer whether or not it has an account)",
    )
    async def create(
        org_id: uuid.UUID,
        body: InvitationCreate,
        actor: ActorDep,
        user: Inviter,
        db: Db,
        background: BackgroundTasks,
    ) -> InvitationRead:
        issued = await invitation_service.create_invitation(
            db,
            ctx,
            actor,
            user,
            org_id,
            email=body.email,
            role=body.role,
            expires_in_days=body.expires_in_days,
        )
        background.add_task(invitation_service.deliver_invitation, ctx, issued.email)
        return invitation_read(issued.view)

    @router.get(
        "/{org_id}/invitations",
        operation_id="organizations_list_invitations",
        response_model=Page[InvitationRead],
        responses=errors(401, 403, 404, 422),
        summary="The organization's invitations, newest first",
    )
    async def list_invitations(
        org_id: uuid.UUID,
        actor: ActorDep,
        db: Db,
        page: PageParam = 1,
        limit: LimitParam = 20,
        status: Annotated[InvitationStatus | None, Query()] = None,
    ) -> Page[InvitationRead]:
        views, total = await invitation_service.list_invitations(
            db, actor, org_id, page=page, limit=limit, status=status
        )
        return _page(views, total, page, limit)

    @router.post(
        "/{org_id}/invitations/{invitation_id}/resend",
        operation_id="organizations_resend_invitation",
        response_model=InvitationRead,
        responses=errors(401, 403, 404, 409, 422, 429),
        summary="Send a pending or expired invitation again, with a new link",
    )
    async def resend(
        org_id: uuid.UUID,
        invitation_id: uuid.UUID,
        actor: ActorDep,
        user: Inviter,
        db: Db,
        background: BackgroundTasks,
        body: Annotated[InvitationResend | None, Body()] = None,
    ) -> InvitationRead:
        issued = await invitation_service.resend_invitation(
            db,
            ctx,
            actor,
            user,
            org_id,
            invitation_id,
            expires_in_days=body.expires_in_days if body else None,
        )
        background.add_task(invitation_service.deliver_invitation, ctx, issued.email)
        return invitation_read(issued.view)

    @router.post(
        "/{org_id}/invitations/{invitation_id}/revoke",
        operation_id="organizations_revoke_invitation",
        response_model=InvitationRead,
        responses=errors(401, 403, 404, 409, 422),
        summary="Withdraw an invitation",
    )
    async def revoke(
        org_id: uuid.UUID, invitation_id: uuid.UUID, actor: ActorDep, db: Db
    ) -> InvitationRead:
        view = await invitation_service.revoke_invitation(db, actor, org_id, invitation_id)
        return invitation_read(view)


def build_invitee_router(auth: "OrgAuth") -> APIRouter:
    """``/invitations``: what the invited person sees and does."""

    deps = auth.dependencies
    ctx = auth.context
    router = APIRouter(prefix="/invitations", tags=["invitations"])
    Db = Annotated[AsyncSession, Depends(deps.get_db)]
    CurrentUser = Annotated[User, Depends(deps.current_user)]
    OptionalUser = Annotated[User | None, Depends(deps.optional_user)]
    Client = Annotated[ClientInfo, Depends(deps.get_client)]

    @router.get(
        "/me",
        operation_id="invitations_list_mine",
        response_model=Page[InvitationRead],
        responses=errors(401, 403, 422),
        summary="Live invitations addressed to my verified email",
    )
    async def mine(
        user: CurrentUser, db: Db, page: PageParam = 1, limit: LimitParam = 20
    ) -> Page[InvitationRead]:
        views, total = await invitation_service.list_my_invitations(
            db, user, page=page, limit=limit
        )
        return _page(views, total, page, limit)

    @router.post(
        "/accept",
        operation_id="invitations_accept",
        response_model=InvitationAccepted,
        responses=errors(400, 401, 403, 409, 422, 429),
        summary="Join the organization, by the emailed token or by invitation id",
        dependencies=[Depends(auth.limits.token_confirm)],
    )
    async def accept(
        body: InvitationAnswer, user: CurrentUser, db: Db, client: Client
    ) -> InvitationAccepted:
        accepted = await invitation_service.accept_invitation(
            db,
            ctx,
            auth.catalog,
            user,
            token=body.token,
            invitation_id=body.invitation_id,
            client=client,
        )
        return InvitationAccepted(
            invitation=invitation_read(accepted.view), member=member_read(accepted.member)
        )

    @router.post(
        "/decline",
        operation_id="invitations_decline",
        response_model=InvitationRead,
        responses=errors(400, 401, 403, 422, 429),
        summary="Decline: by token without an account, or by id when signed in",
        dependencies=[Depends(auth.limits.token_confirm)],
    )
    async def decline(
        body: InvitationAnswer, user: OptionalUser, db: Db, client: Client
    ) -> InvitationRead:
        if body.invitation_id is not None and user is None:
            raise AuthenticationError("Not authenticated.", code=ErrorCode.NOT_AUTHENTICATED)
        view = await invitation_service.decline_invitation(
            db, user=user, token=body.token, invitation_id=body.invitation_id, client=client
        )
        return invitation_read(view)

    return router
