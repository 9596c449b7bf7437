"""/users/me: the caller's profile and password (docs/API.md)."""

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
        return MessageResponse(message="Password changed; your other sessions were signed out.")

    return router
