"""/users/me: the caller's profile, password and email address (docs/API.md)."""

import logging
import uuid
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from orgauth.api.routes._responses import errors
from orgauth.models import User
from orgauth.schemas import (
    EmailChangeConfirm,
    EmailChangeRequest,
    MessageResponse,
    PasswordChangeRequest,
    UserRead,
    UserUpdateMe,
)
from orgauth.services import auth as auth_service
from orgauth.services import verification as verification_service
from orgauth.services.context import ClientInfo
from orgauth.services.sessions import Principal

if TYPE_CHECKING:
    from orgauth.extension import OrgAuth

logger = logging.getLogger("orgauth.auth")
EMAIL_CHANGE_REQUESTED_MESSAGE = "A confirmation link has been sent to the new address."


def add_profile_route(router: APIRouter, auth: "OrgAuth", path: str) -> None:
    """Add ``GET <path>`` (my profile), the route clients call on every page view.

    :meth:`OrgAuth.install` registers it on the app's own router, ahead of the included
    orgauth router, so a request for it does not walk FastAPI's tree of included routers.
    """
    get_principal = auth.dependencies.get_principal

    # One dependency level (the principal) instead of current_user -> principal -> bearer.
    async def read_me(principal: Annotated[Principal, Depends(get_principal)]) -> Response:
        # Serialised once here; FastAPI would otherwise validate the model a second time.
        body = UserRead.model_validate(principal.user_fields).model_dump_json()
        return Response(body, media_type="application/json")

    router.add_api_route(
        path,
        read_me,
        methods=["GET"],
        response_model=UserRead,
        responses=errors(401),
        summary="My profile",
        tags=["users"],
        operation_id="users_get_me",
    )


def build_users_router(auth: "OrgAuth", *, profile_route: bool = True) -> APIRouter:
    """The /users routes; ``profile_route=False`` leaves out GET /users/me (added apart)."""
    deps = auth.dependencies
    router = APIRouter(prefix="/users", tags=["users"])
    Db = Annotated[AsyncSession, Depends(deps.get_db)]
    CurrentUser = Annotated[User, Depends(deps.current_user)]
    CurrentPrincipal = Annotated[Principal, Depends(deps.get_principal)]
    Client = Annotated[ClientInfo, Depends(deps.get_client)]

    if profile_route:
        add_profile_route(router, auth, "/me")

    @router.patch(
        "/me",
        response_model=UserRead,
        responses=errors(401, 422),
        summary="Update my names",
        operation_id="users_update_me",
    )
    async def update_me(body: UserUpdateMe, user: CurrentUser, db: Db) -> UserRead:
        changes = body.model_dump(include=body.model_fields_set)
        updated = await auth_service.update_profile(db, user=user, changes=changes)
        return UserRead.model_validate(updated)

    @router.post(
        "/me/password",
        operation_id="users_change_password",
        response_model=MessageResponse,
        responses=errors(400, 401, 422, 429),
        summary="Change my password; signs out my other sessions",
        dependencies=[Depends(auth.limits.password_change)],
    )
    async def change_password(
        body: PasswordChangeRequest,
        principal: CurrentPrincipal,
        db: Db,
    ) -> MessageResponse:
        await auth_service.change_password(
            db,
            auth.context,
            user=principal.user,
            session_id=principal.session_id,
            current_password=body.current_password,
            new_password=body.new_password,
        )
        return MessageResponse(message="Password changed; your other sessions were signed out.")

    @router.post(
        "/me/email",
        operation_id="users_request_email_change",
        response_model=MessageResponse,
        status_code=status.HTTP_202_ACCEPTED,
        responses=errors(400, 401, 422, 429),
        summary="Email a confirmation link to a new address (same answer if it is taken)",
        dependencies=[Depends(auth.limits.change_email)],
    )
    async def request_email_change(
        body: EmailChangeRequest,
        principal: CurrentPrincipal,
        db: Db,
        client: Client,
        background: BackgroundTasks,
    ) -> MessageResponse:
        await verification_service.check_email_change(
            db,
            auth.context,
            user=principal.user,
            new_email=body.new_email,
            password=body.password,
            client=client,
        )
        # Whether another account has the address, the token and the email all come after
        # the answer: a taken address answers the same, in the same time.
        background.add_task(
            _send_email_change, auth, principal.user_id, principal.session_id, body.new_email
        )
        return MessageResponse(message=EMAIL_CHANGE_REQUESTED_MESSAGE)

    @router.post(
        "/me/email/confirm",
        operation_id="users_confirm_email_change",
        response_model=UserRead,
        responses=errors(400, 401, 409, 422, 429),
        summary="Apply my email change with the emailed token; signs out my other sessions",
        dependencies=[Depends(auth.limits.token_confirm)],
    )
    async def confirm_email_change(
        body: EmailChangeConfirm,
        principal: CurrentPrincipal,
        db: Db,
        client: Client,
        background: BackgroundTasks,
    ) -> UserRead:
        confirmed = await verification_service.confirm_email_token(
            db, auth.context, token=body.token, client=client, caller=principal
        )
        if confirmed.change is not None:
            background.add_task(
                verification_service.notify_email_changed, auth.context, confirmed.change
            )
        return UserRead.model_validate(confirmed.user)

    return router


async def _send_email_change(
    auth: "OrgAuth", user_id: uuid.UUID, session_id: uuid.UUID, new_email: str
) -> None:
    """The email-change request's work, after the response, on a session of its own."""
    try:
        async with auth.sessionmaker() as db:
            await verification_service.send_email_change(
                db, auth.context, user_id=user_id, session_id=session_id, new_email=new_email
            )
    except Exception as exc:  # nobody is waiting for an answer: log it (no email, no token)
        logger.error("email change request failed", extra={"error": type(exc).__name__})
