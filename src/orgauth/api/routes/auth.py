"""/auth: register, login, refresh, logout, password reset and email verification
(docs/API.md)."""

import logging
import uuid
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy.ext.asyncio import AsyncSession

from orgauth.api.routes._responses import NO_STORE, errors
from orgauth.schemas import (
    LoginRequest,
    MessageResponse,
    PasswordResetConfirm,
    PasswordResetRequest,
    RefreshRequest,
    RegisterRequest,
    RevokedResponse,
    TokenResponse,
    UserRead,
    VerifyEmailConfirm,
    VerifyEmailRequest,
)
from orgauth.services import auth as auth_service
from orgauth.services import sessions as session_service
from orgauth.services import verification as verification_service
from orgauth.services.context import ClientInfo
from orgauth.services.sessions import IssuedTokens, Principal

if TYPE_CHECKING:
    from orgauth.extension import OrgAuth

logger = logging.getLogger("orgauth.auth")
RESET_REQUESTED_MESSAGE = (
    "If an account exists for that email address, a password reset link has been sent."
)
VERIFICATION_REQUESTED_MESSAGE = (
    "If that address has an account awaiting verification, a verification link has been sent."
)


def token_response(issued: IssuedTokens, response: Response) -> TokenResponse:
    response.headers.update(NO_STORE)
    return TokenResponse(
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        expires_in=issued.expires_in,
        user=UserRead.model_validate(issued.user),
    )


def build_auth_router(auth: "OrgAuth") -> APIRouter:
    deps = auth.dependencies
    ctx = auth.context
    router = APIRouter(prefix="/auth", tags=["auth"])
    Db = Annotated[AsyncSession, Depends(deps.get_db)]
    Client = Annotated[ClientInfo, Depends(deps.get_client)]
    CurrentPrincipal = Annotated[Principal, Depends(deps.get_principal)]

    @router.post(
        "/register",
        operation_id="auth_register",
        response_model=UserRead,
        status_code=status.HTTP_201_CREATED,
        responses=errors(400, 403, 422, 429),
        summary="Create an account",
        dependencies=[Depends(auth.limits.register)],
    )
    async def register(
        body: RegisterRequest, db: Db, client: Client, background: BackgroundTasks
    ) -> UserRead:
        user = await auth_service.register(
            db,
            ctx,
            email=body.email,
            password=body.password,
            first_name=body.first_name,
            last_name=body.last_name,
            client=client,
        )
        background.add_task(_send_verification, auth, user.id, user.email)
        return UserRead.model_validate(user)

    @router.post(
        "/login",
        operation_id="auth_login",
        response_model=TokenResponse,
        responses=errors(401, 422, 429),
        summary="Sign in with email and password",
        dependencies=[Depends(auth.limits.login)],
    )
    async def login(
        body: LoginRequest, db: Db, client: Client, response: Response
    ) -> TokenResponse:
        issued = await auth_service.login(
            db, ctx, email=body.email, password=body.password, client=client
        )
        return token_response(issued, response)

    @router.post(
        "/login/oauth",
        operation_id="auth_login_form",
        response_model=TokenResponse,
        responses=errors(401, 422, 429),
        summary="Sign in with an OAuth2 password form (Swagger's Authorize button)",
        dependencies=[Depends(auth.limits.login)],
    )
    async def login_oauth(
        form: Annotated[OAuth2PasswordRequestForm, Depends()],
        db: Db,
        client: Client,
        response: Response,
    ) -> TokenResponse:
        issued = await auth_service.login(
            db, ctx, email=form.username, password=form.password, client=client
        )
        return token_response(issued, response)

    @router.post(
        "/refresh",
        operation_id="auth_refresh",
        response_model=TokenResponse,
        responses=errors(401, 422, 429),
        summary="Exchange a refresh token for new tokens (rotation)",
        dependencies=[Depends(auth.limits.refresh)],
    )
    async def refresh(body: RefreshRequest, db: Db, response: Response) -> TokenResponse:
        issued = await session_service.rotate_refresh_token(db, ctx, token=body.refresh_token)
        return token_response(issued, response)

    @router.post(
        "/logout",
        operation_id="auth_logout",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=errors(401),
        summary="Sign out of this session",
    )
    async def logout(principal: CurrentPrincipal, db: Db) -> Response:
        await auth_service.logout(db, user_id=principal.user_id, session_id=principal.session_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post(
        "/logout-all",
        operation_id="auth_logout_all",
        response_model=RevokedResponse,
        responses=errors(401),
        summary="Sign out of every session",
    )
    async def logout_all(principal: CurrentPrincipal, db: Db) -> RevokedResponse:
        revoked = await auth_service.logout_all(db, user_id=principal.user_id)
        return RevokedResponse(revoked=revoked)

    @router.post(
        "/password-reset/request",
        operation_id="auth_request_password_reset",
        response_model=MessageResponse,
        status_code=status.HTTP_202_ACCEPTED,
        responses=errors(422, 429),
        summary="Email a password reset link (same answer for unknown emails)",
        dependencies=[Depends(auth.limits.password_reset)],
    )
    async def password_reset_request(
        body: PasswordResetRequest, client: Client, background: BackgroundTasks
    ) -> MessageResponse:
        # Everything that depends on the email (lookup, token, delivery) runs after the
        # answer has been sent: known and unknown addresses take the same time.
        background.add_task(_request_password_reset, auth, body.email, client)
        return MessageResponse(message=RESET_REQUESTED_MESSAGE)

    @router.post(
        "/password-reset/confirm",
        operation_id="auth_confirm_password_reset",
        response_model=MessageResponse,
        responses=errors(400, 422, 429),
        summary="Set a new password with a reset token; signs out every session",
        dependencies=[Depends(auth.limits.password_reset)],
    )
    async def password_reset_confirm(
        body: PasswordResetConfirm, db: Db, client: Client
    ) -> MessageResponse:
        await auth_service.confirm_password_reset(
            db, ctx, token=body.token, new_password=body.new_password, client=client
        )
        return MessageResponse(message="Your password has been reset; please sign in again.")

    @router.post(
        "/verify-email/request",
        operation_id="auth_request_email_verification",
        response_model=MessageResponse,
        status_code=status.HTTP_202_ACCEPTED,
        responses=errors(422, 429),
        summary="Email a new verification link (same answer for any address)",
        dependencies=[Depends(auth.limits.verify_email)],
    )
    async def verify_email_request(
        body: VerifyEmailRequest, client: Client, background: BackgroundTasks
    ) -> MessageResponse:
        # As for reset requests: the lookup, the token and the email come after the answer.
        background.add_task(_request_verification, auth, body.email, client)
        return MessageResponse(message=VERIFICATION_REQUESTED_MESSAGE)

    @router.post(
        "/verify-email/confirm",
        operation_id="auth_confirm_email_verification",
        response_model=UserRead,
        responses=errors(400, 409, 422, 429),
        summary="Verify the account's email address, or apply an email change, with an "
        "emailed token",
        dependencies=[Depends(auth.limits.token_confirm)],
    )
    async def verify_email_confirm(
        body: VerifyEmailConfirm, db: Db, client: Client, background: BackgroundTasks
    ) -> UserRead:
        confirmed = await verification_service.confirm_email_token(
            db, ctx, token=body.token, client=client
        )
        if confirmed.change is not None:  # the old address hears of it after the response
            background.add_task(verification_service.notify_email_changed, ctx, confirmed.change)
        return UserRead.model_validate(confirmed.user)

    return router


async def _request_password_reset(auth: "OrgAuth", email: str, client: ClientInfo) -> None:
    """The reset request's work, after the response, on a database session of its own."""
    try:
        async with auth.sessionmaker() as db:
            await auth_service.request_password_reset(db, auth.context, email=email, client=client)
    except Exception as exc:  # nobody is waiting for an answer: log it (no email, no token)
        logger.error("password reset request failed", extra={"error": type(exc).__name__})


async def _send_verification(auth: "OrgAuth", user_id: uuid.UUID, email: str) -> None:
    """Registration's verification email, after the response, on a session of its own."""
    try:
        async with auth.sessionmaker() as db:
            await verification_service.send_verification(
                db, auth.context, user_id=user_id, email=email
            )
    except Exception as exc:  # nobody is waiting for an answer: log it (no email, no token)
        logger.error("verification email failed", extra={"error": type(exc).__name__})


async def _request_verification(auth: "OrgAuth", email: str, client: ClientInfo) -> None:
    """The verification request's work, after the response, on a session of its own."""
    try:
        async with auth.sessionmaker() as db:
            await verification_service.request_verification(
                db, auth.context, email=email, client=client
            )
    except Exception as exc:  # nobody is waiting for an answer: log it (no email, no token)
        logger.error("verification request failed", extra={"error": type(exc).__name__})
