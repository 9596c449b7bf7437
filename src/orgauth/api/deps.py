"""FastAPI dependencies bound to one OrgAuth instance.

``Dependencies(auth)`` builds the callables once, so FastAPI's per-request dependency cache
shares one database session between ``current_user`` and the route that uses it.
"""

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from orgauth.api.client import client_info
from orgauth.errors import AuthenticationError, ErrorCode
from orgauth.models import Membership, OrgRole, User
from orgauth.security.network import TrustedProxies
from orgauth.security.tokens import InvalidTokenError
from orgauth.services import organizations as org_service
from orgauth.services import sessions
from orgauth.services.context import ClientInfo
from orgauth.services.organizations import Actor, OrgAccess
from orgauth.services.permissions import require_superuser
from orgauth.services.sessions import Principal

if TYPE_CHECKING:
    from orgauth.extension import OrgAuth

logger = logging.getLogger("orgauth.db")


async def close_session(session: AsyncSession) -> None:
    """Close a request's session; a connection that broke meanwhile is discarded, not raised.

    The close runs after the response has been sent, so raising would only make the server
    drop the client's keep-alive connection.
    """
    try:
        await session.close()
    except (DBAPIError, OSError) as exc:
        logger.warning("discarding a broken database connection", extra={"error": repr(exc)})
        with contextlib.suppress(Exception):
            await session.invalidate()


class Dependencies:
    """The dependencies of one OrgAuth: database session, client info and the principal."""

    def __init__(self, auth: "OrgAuth") -> None:
        settings = auth.settings
        proxies = TrustedProxies(settings.forwarded_allow_ips)
        bearer = OAuth2PasswordBearer(
            tokenUrl=f"{settings.api_prefix}/auth/login/oauth",
            auto_error=False,
            scheme_name="OrgAuthBearer",
        )

        async def default_get_db() -> AsyncIterator[AsyncSession]:
            """A database session for the duration of the request."""
            session = auth.sessionmaker()
            try:
                yield session
            finally:
                await close_session(session)

        get_db = auth.session_dependency or default_get_db

        def get_client(request: Request) -> ClientInfo:
            """Client IP (X-Forwarded-For only from trusted proxies) and User-Agent."""
            return client_info(request, proxies)

        async def _principal_from_token(token: str | None) -> Principal:
            if not token:
                raise AuthenticationError("Not authenticated.", code=ErrorCode.NOT_AUTHENTICATED)
            try:
                claims = auth.access_tokens.verify(token)
            except InvalidTokenError:
                raise AuthenticationError(
                    "The access token is invalid or expired.", code=ErrorCode.INVALID_TOKEN
                ) from None
            principal = await sessions.authenticate(
                auth.statements, user_id=claims.user_id, session_id=claims.session_id
            )
            if principal is None:
                raise AuthenticationError(
                    "The session has ended; sign in again.", code=ErrorCode.INVALID_TOKEN
                )
            return principal

        async def get_principal(token: Annotated[str | None, Depends(bearer)]) -> Principal:
            """The authenticated caller and session, or 401."""
            return await _principal_from_token(token)

        async def current_user(principal: Annotated[Principal, Depends(get_principal)]) -> User:
            """The authenticated, active user (401 otherwise)."""
            return principal.user

        async def optional_user(token: Annotated[str | None, Depends(bearer)]) -> User | None:
            """The user when a bearer token is sent, None when none is; an invalid token is 401."""
            if not token:
                return None
            return (await _principal_from_token(token)).user

        async def current_superuser(user: Annotated[User, Depends(current_user)]) -> User:
            """The authenticated user when a superuser (403 otherwise)."""
            require_superuser(user.is_superuser)
            return user

        self._auth = auth
        self._role_dependencies: dict[OrgRole, Callable[..., Awaitable[Membership]]] = {}
        self._permission_dependencies: dict[str, Callable[..., Awaitable[OrgAccess]]] = {}
        self.principal_from_token = _principal_from_token
        self.get_db = get_db
        self.get_client = get_client
        self.get_principal = get_principal
        self.current_user = current_user
        self.optional_user = optional_user
        self.current_superuser = current_superuser

    def require_org_role(self, role: OrgRole | str) -> Callable[..., Awaitable[Membership]]:
        """Dependency for routes with an ``{org_id}`` path parameter.

        Returns the caller's membership when they hold every permission of the built-in
        ``role`` (so a custom role can satisfy it); superusers pass (as owners).
        Non-members and unknown organizations get 404, too little 403
        ``INSUFFICIENT_ROLE``. Read from the database on every request.
        """
        required = OrgRole(role)
        if required in self._role_dependencies:
            return self._role_dependencies[required]
        current_user = self.current_user
        get_db = self.get_db
        catalog = self._auth.catalog

        async def require_role(
            org_id: uuid.UUID,
            user: Annotated[User, Depends(current_user)],
            db: Annotated[AsyncSession, Depends(get_db)],
        ) -> Membership:
            actor = Actor.of(user, catalog)
            return await org_service.require_membership(db, actor, org_id, required)

        require_role.__name__ = f"require_org_role_{required.value}"
        self._role_dependencies[required] = require_role
        return require_role

    def require_org_permission(self, permission: str) -> Callable[..., Awaitable[OrgAccess]]:
        """Dependency for routes with an ``{org_id}`` path parameter: the caller's
        :class:`OrgAccess` when they hold ``permission`` there (404 for strangers, 403
        ``INSUFFICIENT_ROLE`` without it). ``ValueError`` for a key not in the catalog."""
        catalog = self._auth.catalog
        if permission not in catalog:
            raise ValueError(
                f"{permission!r} is not an organization permission; declare it with "
                "OrgAuth(settings, permissions=[...]) or ORG_PERMISSIONS"
            )
        if permission in self._permission_dependencies:
            return self._permission_dependencies[permission]
        current_user = self.current_user
        get_db = self.get_db

        async def require_permission(
            org_id: uuid.UUID,
            user: Annotated[User, Depends(current_user)],
            db: Annotated[AsyncSession, Depends(get_db)],
        ) -> OrgAccess:
            actor = Actor.of(user, catalog)
            return await org_service.require_access(db, actor, user, org_id, permission)

        require_permission.__name__ = f"require_org_permission_{permission.replace(':', '_')}"
        self._permission_dependencies[permission] = require_permission
        return require_permission
