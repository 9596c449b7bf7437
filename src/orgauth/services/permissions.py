"""The organization permission matrix: the one place that decides who may do what.

Routes, the admin API and the ``require_org_role`` dependency all ask :func:`authorize`.
Superusers act as owners everywhere.

| action          | owner | admin | member |
|-----------------|:-----:|:-----:|:------:|
| view            |  yes  |  yes  |  yes   |
| list_members    |  yes  |  yes  |  yes   |
| update          |  yes  |  yes  |   -    |
| change_slug     |  yes  |  yes  |   -    |
| delete          |  yes  |   -   |   -    |
| add_member      |  yes  |  yes  |   -    |
| change_role     |  yes  |  yes  |   -    |
| remove_member   |  yes  |  yes  |   -    |
| leave (self)    |  yes  |  yes  |  yes   |

Target rules: only owners grant ``owner``; admins may not change or remove an owner.
The last owner can never be demoted, removed or leave (enforced with a lock in
:mod:`orgauth.services.organizations`, since it depends on the other rows).
"""

from __future__ import annotations

import enum

from orgauth.errors import ErrorCode, PermissionDeniedError
from orgauth.models import OrgRole


class OrgAction(enum.StrEnum):
    VIEW = "view"
    LIST_MEMBERS = "list_members"
    UPDATE = "update"
    CHANGE_SLUG = "change_slug"
    DELETE = "delete"
    ADD_MEMBER = "add_member"
    CHANGE_ROLE = "change_role"
    REMOVE_MEMBER = "remove_member"
    LEAVE = "leave"


_EVERYONE = frozenset(OrgRole)
_MANAGERS = frozenset({OrgRole.OWNER, OrgRole.ADMIN})
_OWNERS = frozenset({OrgRole.OWNER})

#: Which roles may perform each action at all.
ACTION_ROLES: dict[OrgAction, frozenset[OrgRole]] = {
    OrgAction.VIEW: _EVERYONE,
    OrgAction.LIST_MEMBERS: _EVERYONE,
    OrgAction.UPDATE: _MANAGERS,
    OrgAction.CHANGE_SLUG: _MANAGERS,
    OrgAction.DELETE: _OWNERS,
    OrgAction.ADD_MEMBER: _MANAGERS,
    OrgAction.CHANGE_ROLE: _MANAGERS,
    OrgAction.REMOVE_MEMBER: _MANAGERS,
    OrgAction.LEAVE: _EVERYONE,
}

#: Which roles each role may hand out (when adding a member or changing a role).
GRANTABLE_ROLES: dict[OrgRole, frozenset[OrgRole]] = {
    OrgRole.OWNER: _EVERYONE,
    OrgRole.ADMIN: frozenset({OrgRole.ADMIN, OrgRole.MEMBER}),
    OrgRole.MEMBER: frozenset(),
}

#: Whose membership each role may change or remove (by the target's current role).
MANAGEABLE_ROLES: dict[OrgRole, frozenset[OrgRole]] = {
    OrgRole.OWNER: _EVERYONE,
    OrgRole.ADMIN: frozenset({OrgRole.ADMIN, OrgRole.MEMBER}),
    OrgRole.MEMBER: frozenset(),
}


def effective_role(role: OrgRole | str | None, *, is_superuser: bool) -> OrgRole | None:
    """The role the actor acts with: superusers act as owners."""
    if is_superuser:
        return OrgRole.OWNER
    return OrgRole(role) if role is not None else None


def is_allowed(
    actor: OrgRole,
    action: OrgAction,
    *,
    target_role: OrgRole | None = None,
    new_role: OrgRole | None = None,
) -> bool:
    """True when ``actor`` may perform ``action`` (on a member with ``target_role``)."""
    if actor not in ACTION_ROLES[action]:
        return False
    if action is OrgAction.LEAVE:
        return True
    if target_role is not None and target_role not in MANAGEABLE_ROLES[actor]:
        return False
    return new_role is None or new_role in GRANTABLE_ROLES[actor]


def authorize(
    actor: OrgRole,
    action: OrgAction,
    *,
    target_role: OrgRole | None = None,
    new_role: OrgRole | None = None,
) -> None:
    """Raise 403 ``INSUFFICIENT_ROLE`` unless the matrix allows the action."""
    if not is_allowed(actor, action, target_role=target_role, new_role=new_role):
        raise insufficient_role()


def insufficient_role() -> PermissionDeniedError:
    """403 ``INSUFFICIENT_ROLE``: the caller's role does not allow the action."""
    return PermissionDeniedError(
        "Your role in this organization does not allow this.", code=ErrorCode.INSUFFICIENT_ROLE
    )


def role_at_least(actual: OrgRole, required: OrgRole) -> bool:
    """Role hierarchy: owner > admin > member."""
    return actual.rank >= required.rank


def require_superuser(is_superuser: bool) -> None:
    """The admin API's one rule: superusers only (403 ``SUPERUSER_REQUIRED``)."""
    if not is_superuser:
        raise PermissionDeniedError(
            "Superuser privileges are required.", code=ErrorCode.SUPERUSER_REQUIRED
        )
