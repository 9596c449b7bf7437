"""App-level dependencies: ``from orgauth import current_user``.

They find the OrgAuth installed on the request's app (``auth.install(app)``), so a route
module can depend on them without importing the ``auth`` object. ``auth.current_user``
and friends are the same checks bound to one instance.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from orgauth.models import Membership, OrgRole, User
from orgauth.services import organizations as org_service
from orgauth.services.organizations import Actor, OrgAccess
from orgauth.services.permissions import is_permission_key, require_superuser

if TYPE_CHECKING:
    from orgauth.extension import OrgAuth

_bearer = OAuth2PasswordBearer(
    tokenUrl="/api/v1/auth/login/oauth", auto_error=False, scheme_name="OrgAuthBearer"
)
Token = Annotated[str | None, Depends(_bearer)]


def get_orgauth(request: Request) -> OrgAuth:
    """The OrgAuth installed on this app."""
    auth = getattr(request.app.state, "orgauth", None)
    if auth is None:
        raise RuntimeError("orgauth is not installed on this app; call OrgAuth(...).install(app)")
    return auth  # type: ignore[no-any-return]


async def _user(request: Request, token: str | None) -> User:
    principal = await get_orgauth(request).dependencies.principal_from_token(token)
    return principal.user


async def current_user(request: Request, token: Token) -> User:
    """The authenticated, active user (401 otherwise)."""
    return await _user(request, token)


async def optional_user(request: Request, token: Token) -> User | None:
    """The user when a bearer token is sent, None when none is; an invalid token is 401."""
    return await _user(request, token) if token else None


async def current_superuser(user: Annotated[User, Depends(current_user)]) -> User:
    """The authenticated user when a superuser (403 otherwise)."""
    require_superuser(user.is_superuser)
    return user


def require_org_role(role: OrgRole | str) -> Callable[..., Awaitable[Membership]]:
    """Dependency for routes with ``{org_id}``: the caller's membership when they hold
    every permission of the built-in ``role`` (superusers pass as owners; non-members 404;
    too little 403)."""
    required = OrgRole(role)

    async def require_role(
        org_id: uuid.UUID, request: Request, user: Annotated[User, Depends(current_user)]
    ) -> Membership:
        auth = get_orgauth(request)
        async with auth.sessionmaker() as db:
            actor = Actor.of(user, auth.catalog)
            return await org_service.require_membership(db, actor, org_id, required)

    require_role.__name__ = f"require_org_role_{required.value}"
    return require_role


def require_org_permission(permission: str) -> Callable[..., Awaitable[OrgAccess]]:
    """Dependency for routes with ``{org_id}``: the caller's :class:`OrgAccess` when they
    hold ``permission`` there (non-members 404; without it 403).

    A malformed key raises ``ValueError`` here; a well-formed key the installed OrgAuth
    does not declare raises it on the first request (``auth.require_org_permission``
    checks the catalog at once).
    """
    if not is_permission_key(permission):
        raise ValueError(f"{permission!r} is not a permission key (resource:action)")

    async def require_permission(
        org_id: uuid.UUID, request: Request, user: Annotated[User, Depends(current_user)]
    ) -> OrgAccess:
        auth = get_orgauth(request)
        if permission not in auth.catalog:
            raise ValueError(
                f"{permission!r} is not an organization permission of this app; declare it "
                "with OrgAuth(settings, permissions=[...]) or ORG_PERMISSIONS"
            )
        async with auth.sessionmaker() as db:
            actor = Actor.of(user, auth.catalog)
            return await org_service.require_access(db, actor, user, org_id, permission)

    require_permission.__name__ = f"require_org_permission_{permission.replace(':', '_')}"
    return require_permission
