"""App-level dependencies: ``from orgauth import current_user``.

They find the OrgAuth installed on the request's app (``auth.install(app)``), so a route
module can depend on them without importing the ``auth`` object. ``auth.current_user``
and friends are the same checks bound to one instance: both read the credential the same
way (``Authorization: Bearer`` or ``X-API-Key``) and answer API keys the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from orgauth.api.deps import (
    API_KEY_HEADER,
    AnyPrincipal,
    Credential,
    api_key_header,
    read_credential,
    refuse_key_in,
)
from orgauth.models import Membership, OrgRole, User
from orgauth.services import organizations as org_service
from orgauth.services.api_keys import KeyPrincipal
from orgauth.services.organizations import Actor, OrgAccess
from orgauth.services.permissions import is_permission_key, require_superuser

if TYPE_CHECKING:
    from orgauth.extension import OrgAuth

_bearer = OAuth2PasswordBearer(
    tokenUrl="/api/v1/auth/login/oauth", auto_error=False, scheme_name="OrgAuthBearer"
)


def get_orgauth(request: Request) -> OrgAuth:
    """The OrgAuth installed on this app."""
    auth = getattr(request.app.state, "orgauth", None)
    if auth is None:
        raise RuntimeError("orgauth is not installed on this app; call OrgAuth(...).install(app)")
    return auth  # type: ignore[no-any-return]


async def _credential(
    token: Annotated[str | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(api_key_header)],
) -> Credential | None:
    return read_credential(token, header_key)


async def _user_credential(
    request: Request, token: Annotated[str | None, Depends(_bearer)]
) -> Credential | None:
    return read_credential(token, request.headers.get(API_KEY_HEADER))


CredentialDep = Annotated[Credential | None, Depends(_credential)]
UserCredentialDep = Annotated[Credential | None, Depends(_user_credential)]


async def current_principal(request: Request, credential: CredentialDep) -> AnyPrincipal:
    """Who is calling: a user's session (``Principal``) or an organization's API key
    (``KeyPrincipal``); 401 without a valid credential."""
    return await get_orgauth(request).dependencies.principal_from_credential(credential)


async def current_user(request: Request, credential: UserCredentialDep) -> User:
    """The authenticated, active user (401 otherwise; 403 ``API_KEY_NOT_ALLOWED`` for an
    API key)."""
    principal = await get_orgauth(request).dependencies.user_principal(credential)
    return principal.user


async def optional_user(request: Request, credential: UserCredentialDep) -> User | None:
    """The user when a credential is sent, None when none is; an invalid one is 401, an
    API key 403."""
    return await current_user(request, credential) if credential is not None else None


async def current_superuser(user: Annotated[User, Depends(current_user)]) -> User:
    """The authenticated user when a superuser (403 otherwise)."""
    require_superuser(user.is_superuser)
    return user


def require_org_role(role: OrgRole | str) -> Callable[..., Awaitable[Membership]]:
    """Dependency for routes with ``{org_id}``: the caller's membership when they hold
    every permission of the built-in ``role`` (superusers pass as owners; non-members 404;
    too little 403; API keys 403 ``API_KEY_NOT_ALLOWED``, another organization's 404)."""
    required = OrgRole(role)

    async def require_role(
        org_id: uuid.UUID,
        request: Request,
        principal: Annotated[AnyPrincipal, Depends(current_principal)],
    ) -> Membership:
        if isinstance(principal, KeyPrincipal):
            raise refuse_key_in(principal, org_id)
        auth = get_orgauth(request)
        async with auth.sessionmaker() as db:
            actor = Actor.of(principal.user, auth.catalog)
            return await org_service.require_membership(db, actor, org_id, required)

    require_role.__name__ = f"require_org_role_{required.value}"
    return require_role


def require_org_permission(permission: str) -> Callable[..., Awaitable[OrgAccess]]:
    """Dependency for routes with ``{org_id}``: the caller's :class:`OrgAccess` when they
    hold ``permission`` there (non-members and other organizations' API keys 404; without
    it 403). User tokens and the organization's API keys are accepted alike.

    A malformed key raises ``ValueError`` here; a well-formed key the installed OrgAuth
    does not declare raises it on the first request (``auth.require_org_permission``
    checks the catalog at once).
    """
    if not is_permission_key(permission):
        raise ValueError(f"{permission!r} is not a permission key (resource:action)")

    async def require_permission(
        org_id: uuid.UUID,
        request: Request,
        principal: Annotated[AnyPrincipal, Depends(current_principal)],
    ) -> OrgAccess:
        auth = get_orgauth(request)
        if permission not in auth.catalog:
            raise ValueError(
                f"{permission!r} is not an organization permission of this app; declare it "
                "with OrgAuth(settings, permissions=[...]) or ORG_PERMISSIONS"
            )
        async with auth.sessionmaker() as db:
            if isinstance(principal, KeyPrincipal):
                actor = Actor.of_key(principal, auth.catalog)
                return await org_service.require_access(db, actor, None, org_id, permission)
            actor = Actor.of(principal.user, auth.catalog)
            return await org_service.require_access(db, actor, principal.user, org_id, permission)

    require_permission.__name__ = f"require_org_permission_{permission.replace(':', '_')}"
    return require_permission
