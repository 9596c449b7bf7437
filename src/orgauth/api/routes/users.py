"""/users/me: the caller's profile and password (SPEC §3.3)."""

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Response
from sqlalchemy.ext.asyncio import AsyncSession

from orgauth.api.routes._responses import errors
from orgauth.models import User
from orgauth.schemas import MessageResponse, PasswordChangeRequest, UserRead, UserUpdateMe
from orgauth.services import auth as auth_service
from orgauth.services.sessions import Principal

if TYPE_CHECKING:
    from orgauth.extension import OrgAuth


def build_users_router(auth: "OrgAuth") -> APIRouter:
    deps = auth.dependencies
    router = APIRouter(prefix="/users", tags=["users"])
    Db = Annotated[AsyncSession, Depends(deps.get_db)]
    CurrentUser = Annotated[User, Depends(deps.current_user)]

    @router.get("/me", response_model=UserRead, responses=errors(401), summary="My profile")
    async def read_me(user: CurrentUser) -> Response:
        # Serialised once here; FastAPI would otherwise validate the model a second time.
        body = UserRead.model_validate(user).model_dump_json()
        return Response(body, media_type="application/json")

    @router.patch(
        "/me", response_model=UserRead, responses=errors(401, 422), summary="Update my names"
    )
    async def update_me(body: UserUpdateMe, user: CurrentUser, db: Db) -> UserRead:
        changes = body.model_dump(include=body.model_fields_set)
        updated = await auth_service.update_profile(db, user=user, changes=changes)
        return UserRead.model_validate(updated)

    @router.post(
        "/me/password",
        response_model=MessageResponse,
        responses=errors(400, 401, 422, 429),
        summary="Change my password; signs out my other sessions",
        dependencies=[Depends(auth.limits.password_change)],
    )
    async def change_password(
        body: PasswordChangeRequest,
        principal: Annotated[Principal, Depends(deps.get_principal)],
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
        await auth.hooks.after_password_change(principal.user)
        return MessageResponse(message="Password changed; your other sessions were signed out.")

    return router
