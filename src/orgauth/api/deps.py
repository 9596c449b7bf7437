"""FastAPI dependencies bound to one OrgAuth instance.

``Dependencies(auth)`` builds the callables once, so FastAPI's per-request dependency cache
shares one database session between ``current_user`` and the route that uses it.
"""

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from orgauth.api.client import client_info
from orgauth.errors import (
    AuthenticationError,
    BadRequestError,
    ErrorCode,
    NotFoundError,
    PermissionDeniedError,
)
from orgauth.models import Membership, OrgRole, User
from orgauth.security.api_keys import PREFIX as API_KEY_PREFIX
from orgauth.security.network import TrustedProxies
from orgauth.security.tokens import InvalidTokenError
from orgauth.services import organizations as org_service
from orgauth.services import sessions
from orgauth.services.api_keys import KeyPrincipal, authenticate_key
from orgauth.services.context import ClientInfo
from orgauth.services.organizations import Actor, OrgAccess
from orgauth.services.permissions import require_superuser
from orgauth.services.sessions import Principal

if TYPE_CHECKING:
    from orgauth.extension import OrgAuth

logger = logging.getLogger("orgauth.db")

#: ``X-API-Key: oa_live_…``, the other way to send an API key (docs/API.md).
API_KEY_HEADER = "X-API-Key"
api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, scheme_name="OrgAuthApiKey")
#: What authenticated the request: a user's session, or an organization's API key.
AnyPrincipal = Principal | KeyPrincipal


@dataclass(frozen=True)
class Credential:
    """What the request presented: ``Authorization: Bearer`` or ``X-API-Key``."""

    value: str
    is_api_key: bool


def read_credential(bearer_token: str | None, header_key: str | None) -> Credential | None:
    """The one credential of a request; both headers at once is 400 ``BAD_REQUEST``. A
    bearer value with the API key prefix is a key. Query strings, cookies and bodies are
    never read."""
    if bearer_token and header_key is not None:
        raise BadRequestError(
            "Send either Authorization or X-API-Key, not both.", code=ErrorCode.BAD_REQUEST
        )
    if header_key is not None:
        return Credential(header_key, is_api_key=True)
    if bearer_token:
        return Credential(bearer_token, is_api_key=bearer_token.startswith(API_KEY_PREFIX))
    return None


def api_key_not_allowed() -> PermissionDeniedError:
    """403 ``API_KEY_NOT_ALLOWED``: a valid key on a route that needs a person's session."""
    return PermissionDeniedError(
        "This route does not accept API keys; it needs a user's session.",
        code=ErrorCode.API_KEY_NOT_ALLOWED,
    )


def refuse_key_in(key: KeyPrincipal, org_id: uuid.UUID) -> NotFoundError | PermissionDeniedError:
    """A key on a user-only route of an organization: another organization's is 404 (it
    does not belong there), its own 403 ``API_KEY_NOT_ALLOWED``."""
    if key.organization_id != org_id:
        return org_service.org_not_found()
    return api_key_not_allowed()


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
        policy = auth.context.session_policy
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
                auth.statements,
                user_id=claims.user_id,
                session_id=claims.session_id,
                policy=policy,
            )
            if principal is None:
                raise AuthenticationError(
                    "The session has ended; sign in again.", code=ErrorCode.INVALID_TOKEN
                )
            return principal

        async def _key_principal(key: str) -> KeyPrincipal:
            principal = await authenticate_key(auth.statements, auth.catalog, key)
            if principal is None:  # one answer for malformed, unknown, revoked, expired, orphaned
                raise AuthenticationError("The API key is invalid.", code=ErrorCode.INVALID_API_KEY)
            await auth.account_limits.api_key(principal.key_id)
            return principal

        async def principal_from_credential(credential: Credential | None) -> AnyPrincipal:
            if credential is None:
                raise AuthenticationError("Not authenticated.", code=ErrorCode.NOT_AUTHENTICATED)
            if credential.is_api_key:
                return await _key_principal(credential.value)
            return await _principal_from_token(credential.value)

        async def user_principal(credential: Credential | None) -> Principal:
            found = await principal_from_credential(credential)
            if isinstance(found, KeyPrincipal):
                raise api_key_not_allowed()
            return found

        async def get_credential(
            token: Annotated[str | None, Depends(bearer)],
            header_key: Annotated[str | None, Depends(api_key_header)],
        ) -> Credential | None:
            return read_credential(token, header_key)

        async def get_user_credential(
            request: Request, token: Annotated[str | None, Depends(bearer)]
        ) -> Credential | None:
            # Routes for people read X-API-Key too (to refuse a key with 403, not 401),
            # without listing it in their OpenAPI security.
            return read_credential(token, request.headers.get(API_KEY_HEADER))

        CredentialDep = Annotated[Credential | None, Depends(get_credential)]
        UserCredentialDep = Annotated[Credential | None, Depends(get_user_credential)]

        async def current_principal(credential: CredentialDep) -> AnyPrincipal:
            """A user's session (:class:`Principal`) or an organization's API key
            (:class:`KeyPrincipal`), or 401."""
            return await principal_from_credential(credential)

        async def get_principal(credential: UserCredentialDep) -> Principal:
            """The authenticated user and session: 401 without one, 403
            ``API_KEY_NOT_ALLOWED`` for a valid API key."""
            return await user_principal(credential)

        async def current_user(principal: Annotated[Principal, Depends(get_principal)]) -> User:
            """The authenticated, active user (401 otherwise; 403 for an API key)."""
            return principal.user

        async def optional_user(credential: UserCredentialDep) -> User | None:
            """The user when a credential is sent, None when none is; an invalid one is 401,
            an API key 403."""
            if credential is None:
                return None
            return (await user_principal(credential)).user

        async def current_superuser(user: Annotated[User, Depends(current_user)]) -> User:
            """The authenticated user when a superuser (403 otherwise)."""
            require_superuser(user.is_superuser)
            return user

        PrincipalDep = Annotated[AnyPrincipal, Depends(current_principal)]
        ClientDep = Annotated[ClientInfo, Depends(get_client)]
        catalog = auth.catalog

        async def principal_actor(principal: PrincipalDep, client: ClientDep) -> Actor:
            """The actor of a route open to API keys: the user, or the key."""
            if isinstance(principal, KeyPrincipal):
                return Actor.of_key(principal, catalog, client)
            return Actor.of(principal.user, catalog, client)

        async def org_user_actor(
            org_id: uuid.UUID, principal: PrincipalDep, client: ClientDep
        ) -> Actor:
            """The actor of an organization route that needs a person: a key of this
            organization is 403 ``API_KEY_NOT_ALLOWED``, of another 404."""
            if isinstance(principal, KeyPrincipal):
                raise refuse_key_in(principal, org_id)
            return Actor.of(principal.user, catalog, client)

        async def user_actor(
            user: Annotated[User, Depends(current_user)], client: ClientDep
        ) -> Actor:
            """The actor of a route outside any one organization (users only)."""
            return Actor.of(user, catalog, client)

        async def acting_person(
            principal: PrincipalDep, db: Annotated[AsyncSession, Depends(get_db)]
        ) -> User:
            """The person behind the request: the user, or an API key's creator."""
            if isinstance(principal, KeyPrincipal):
                creator = await db.get(User, principal.creator_id)
                if creator is None:  # deleted since the key was checked
                    raise AuthenticationError(
                        "The API key is invalid.", code=ErrorCode.INVALID_API_KEY
                    )
                return creator
            return principal.user

        self._auth = auth
        self.principal_actor = principal_actor
        self.org_user_actor = org_user_actor
        self.user_actor = user_actor
        self.acting_person = acting_person
        self._role_dependencies: dict[OrgRole, Callable[..., Awaitable[Membership]]] = {}
        self._permission_dependencies: dict[str, Callable[..., Awaitable[OrgAccess]]] = {}
        self.principal_from_token = _principal_from_token
        self.principal_from_credential = principal_from_credential
        self.user_principal = user_principal
        self.get_credential = get_credential
        self.get_user_credential = get_user_credential
        self.current_principal = current_principal
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
        org_user_actor = self.org_user_actor
        get_db = self.get_db

        async def require_role(
            org_id: uuid.UUID,
            actor: Annotated[Actor, Depends(org_user_actor)],
            db: Annotated[AsyncSession, Depends(get_db)],
        ) -> Membership:
            return await org_service.require_membership(db, actor, org_id, required)

        require_role.__name__ = f"require_org_role_{required.value}"
        self._role_dependencies[required] = require_role
        return require_role

    def require_org_permission(self, permission: str) -> Callable[..., Awaitable[OrgAccess]]:
        """Dependency for routes with an ``{org_id}`` path parameter: the caller's
        :class:`OrgAccess` when they hold ``permission`` there (404 for strangers and other
        organizations' API keys, 403 ``INSUFFICIENT_ROLE`` without it). Accepts user tokens
        and the organization's API keys alike. ``ValueError`` for a key not in the catalog."""
        catalog = self._auth.catalog
        if permission not in catalog:
            raise ValueError(
                f"{permission!r} is not an organization permission; declare it with "
                "OrgAuth(settings, permissions=[...]) or ORG_PERMISSIONS"
            )
        if permission in self._permission_dependencies:
            return self._permission_dependencies[permission]
        current_principal = self.current_principal
        get_db = self.get_db

        async def require_permission(
            org_id: uuid.UUID,
            principal: Annotated[AnyPrincipal, Depends(current_principal)],
            db: Annotated[AsyncSession, Depends(get_db)],
        ) -> OrgAccess:
            if isinstance(principal, KeyPrincipal):
                actor = Actor.of_key(principal, catalog)
                return await org_service.require_access(db, actor, None, org_id, permission)
            actor = Actor.of(principal.user, catalog)
            return await org_service.require_access(db, actor, principal.user, org_id, permission)

        require_permission.__name__ = f"require_org_permission_{permission.replace(':', '_')}"
        self._permission_dependencies[permission] = require_permission
        return require_permission
