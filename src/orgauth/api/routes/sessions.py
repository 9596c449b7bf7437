"""/sessions: list and revoke my signed-in devices (docs/API.md)."""

import uuid
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from orgauth.api.routes._responses import errors
from orgauth.schemas import SessionList, SessionRead
from orgauth.services import sessions as session_service
from orgauth.services.sessions import Principal

if TYPE_CHECKING:
    from orgauth.extension import OrgAuth


def build_sessions_router(auth: "OrgAuth") -> APIRouter:
    deps = auth.dependencies
    router = APIRouter(prefix="/sessions", tags=["sessions"])
    Db = Annotated[AsyncSession, Depends(deps.get_db)]
    CurrentPrincipal = Annotated[Principal, Depends(deps.get_principal)]

    @router.get(
        "/me",
        response_model=SessionList,
        responses=errors(401),
        summary="My active sessions",
        operation_id="sessions_list_mine",
    )
    async def my_sessions(principal: CurrentPrincipal, db: Db) -> SessionList:
        rows = await session_service.list_active_sessions(
            db,
            user_id=principal.user_id,
            current_session_id=principal.session_id,
            policy=auth.context.session_policy,
        )
        items = [SessionRead.model_validate(row) for row in rows]
        return SessionList(sessions=items, total=len(items))

    @router.delete(
        "/{session_id}",
        operation_id="sessions_revoke",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=errors(401, 404),
        summary="Revoke one of my sessions",
    )
    async def revoke(session_id: uuid.UUID, principal: CurrentPrincipal, db: Db) -> Response:
        await session_service.revoke_own_session(
            db, user_id=principal.user_id, session_id=session_id
        )
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router
