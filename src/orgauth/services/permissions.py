"""The one authorization module: the permission catalog, role → permission resolution and
the escalation rules (docs/SECURITY.md, "Roles and permissions").

Every organization check — orgauth's routes, ``require_org_permission``,
``require_org_role`` and the features built on them — asks this module and nothing else.

* A permission is ``resource:action``. The catalog holds the built-in ones plus the host's
  (``OrgAuth(settings, permissions=[...])`` and ``ORG_PERMISSIONS``).
* Each permission names the lowest built-in role that holds it (``min_role``); the built-in
  roles ``owner`` ⊇ ``admin`` ⊇ ``member`` are derived from that, in code, so a new host
  permission reaches them at once. Custom roles are rows holding a list of keys; keys no
  longer in the catalog are ignored.
* A :class:`Grant` is what a principal holds in one organization. The rules below decide
  with it alone; the services fetch it with the membership in one query.

Superusers hold every permission everywhere and count as owners.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orgauth.errors import ErrorCode, PermissionDeniedError, UnprocessableError
from orgauth.lengths import PERMISSION_MAX_LENGTH
from orgauth.roles import OrgRole

PERMISSION_PATTERN = re.compile(r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$")
#: Custom role keys; the built-in keys match it too but are reserved.
ROLE_KEY_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
BUILT_IN_ROLE_KEYS: tuple[str, ...] = tuple(str(role) for role in OrgRole)
BUILT_IN_ROLE_NAMES: dict[str, str] = {"owner": "Owner", "admin": "Admin", "member": "Member"}
SETTING = "ORG_PERMISSIONS"


@dataclass(frozen=True)
class OrgPermission:
    """A permission of the catalog. ``min_role`` is the lowest built-in role holding it."""

    key: str
    description: str = ""
    min_role: OrgRole | str = OrgRole.ADMIN

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not is_permission_key(self.key):
            raise ValueError(
                f"{SETTING}: {self.key!r} is not a permission key (resource:action, "
                f"lower case, at most {PERMISSION_MAX_LENGTH} characters)"
            )
        try:
            object.__setattr__(self, "min_role", OrgRole(self.min_role))
        except ValueError:
            raise ValueError(
                f"{SETTING}: min_role of {self.key!r} must be owner, admin or member, "
                f"not {self.min_role!r}"
            ) from None
        if not isinstance(self.description, str):
            raise ValueError(f"{SETTING}: the description of {self.key!r} must be a string")

    @property
    def role(self) -> OrgRole:
        return OrgRole(self.min_role)


def is_role_key(key: str) -> bool:
    """True for a well-formed role key; no stored role has any other, so callers answer
    "unknown" without asking the database (which may refuse such text, e.g. a NUL)."""
    return re.fullmatch(ROLE_KEY_PATTERN, key) is not None


def is_permission_key(key: str) -> bool:
    return len(key) <= PERMISSION_MAX_LENGTH and PERMISSION_PATTERN.fullmatch(key) is not None


_OWNER, _ADMIN, _MEMBER = OrgRole.OWNER, OrgRole.ADMIN, OrgRole.MEMBER

#: The built-in permissions and the lowest built-in role holding each (docs/API.md).
BUILT_IN_PERMISSIONS: tuple[OrgPermission, ...] = (
    OrgPermission("organization:read", "Read the organization, its roles and the catalog", _MEMBER),
    OrgPermission("organization:update", "Change the name, slug and description", _ADMIN),
    OrgPermission("organization:delete", "Delete the organization", _OWNER),
    OrgPermission("members:read", "List members", _MEMBER),
    OrgPermission("members:add", "Add existing users as members", _ADMIN),
    OrgPermission("members:update", "Change members' roles", _ADMIN),
    OrgPermission("members:remove", "Remove members", _ADMIN),
    OrgPermission("invitations:manage", "Invite people and manage invitations", _ADMIN),
    OrgPermission("roles:manage", "Create, update and delete custom roles", _ADMIN),
    OrgPermission("api_keys:manage", "Create, list and revoke API keys", _ADMIN),
    OrgPermission("audit_logs:read", "Read and export the audit log", _ADMIN),
    OrgPermission("webhooks:manage", "Manage webhook endpoints and deliveries", _ADMIN),
)
BUILT_IN_KEYS: frozenset[str] = frozenset(p.key for p in BUILT_IN_PERMISSIONS)


def parse_permission_setting(value: Any) -> list[OrgPermission]:
    """``ORG_PERMISSIONS``: a JSON list of keys or ``{"key", "description"?, "min_role"?}``
    objects, or comma-separated keys; a plain key means ``min_role: admin``."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{SETTING}: not valid JSON ({exc.msg})") from None
        else:
            value = [item.strip() for item in text.split(",") if item.strip()]
    if not isinstance(value, list | tuple):
        raise ValueError(f"{SETTING}: expected a list of permission keys or objects")
    return [_permission_item(item) for item in value]


def _permission_item(item: Any) -> OrgPermission:
    if isinstance(item, OrgPermission):
        return item
    if isinstance(item, str):
        return OrgPermission(item)
    if isinstance(item, Mapping):
        unknown = sorted(set(item) - {"key", "description", "min_role"})
        if unknown or "key" not in item:
            raise ValueError(
                f"{SETTING}: each object needs a key and may have description and min_role"
            )
        return OrgPermission(
            item["key"],
            description=item.get("description") or "",
            min_role=item.get("min_role") or OrgRole.ADMIN,
        )
    raise ValueError(f"{SETTING}: {item!r} is neither a permission key nor an object")


@dataclass(frozen=True)
class Grant:
    """What a principal holds in one organization.

    ``role`` is the membership's role key (None when not a member: a superuser, later an
    API key); ``owner`` is true for the ``owner`` role and superusers.
    """

    role: str | None
    permissions: frozenset[str]
    owner: bool = False

    def holds(self, permission: str) -> bool:
        return permission in self.permissions


class PermissionCatalog:
    """The catalog of one OrgAuth: built-in plus host permissions, and the built-in roles.

    Raises ``ValueError`` naming ``ORG_PERMISSIONS`` on a malformed key, a duplicate or a
    clash with a built-in permission.
    """

    def __init__(self, host: Iterable[str | OrgPermission | Mapping[str, Any]] = ()) -> None:
        permissions = {p.key: p for p in BUILT_IN_PERMISSIONS}
        for item in host:
            permission = _permission_item(item)
            if permission.key in BUILT_IN_KEYS:
                raise ValueError(f"{SETTING}: {permission.key!r} is a built-in permission")
            if permission.key in permissions:
                raise ValueError(f"{SETTING}: {permission.key!r} is listed twice")
            permissions[permission.key] = permission
        self.permissions: dict[str, OrgPermission] = dict(sorted(permissions.items()))
        self.keys: frozenset[str] = frozenset(permissions)
        self.built_in_roles: dict[str, frozenset[str]] = {
            str(role): frozenset(p.key for p in permissions.values() if p.role.rank <= role.rank)
            for role in OrgRole
        }

    def __contains__(self, key: object) -> bool:
        return key in self.keys

    def unknown(self, keys: Iterable[str]) -> list[str]:
        """The keys that are not in the catalog, sorted."""
        return sorted(set(keys) - self.keys)

    def is_built_in_role(self, key: str) -> bool:
        return key in self.built_in_roles

    def role_permissions(self, key: str, stored: Sequence[str] | None = None) -> frozenset[str]:
        """A role's effective permissions: built-in ones from code, a custom role's from its
        stored list (keys no longer in the catalog ignored; none for a missing row)."""
        if key in self.built_in_roles:
            return self.built_in_roles[key]
        return frozenset(stored or ()) & self.keys

    def grant(
        self, role: str | None, stored: Sequence[str] | None = None, *, is_superuser: bool
    ) -> Grant | None:
        """What a user holds in an organization, or None when they do not belong to it."""
        if is_superuser:
            return Grant(role, self.keys, owner=True)
        if role is None:
            return None
        return Grant(role, self.role_permissions(role, stored), owner=role == OrgRole.OWNER)


# --- the rules (docs/SECURITY.md) ---------------------------------------------------------


def insufficient_role() -> PermissionDeniedError:
    """403 ``INSUFFICIENT_ROLE``: the caller's role does not allow the action."""
    return PermissionDeniedError(
        "Your role in this organization does not allow this.", code=ErrorCode.INSUFFICIENT_ROLE
    )


def require_permission(grant: Grant, permission: str) -> None:
    """Rule 1: the route's permission is held."""
    if not grant.holds(permission):
        raise insufficient_role()


def may_grant_role(grant: Grant, role: str, role_permissions: frozenset[str]) -> bool:
    """Rule 2: ``owner`` only by an owner; any other role only within what the caller holds."""
    if role == OrgRole.OWNER:
        return grant.owner
    return role_permissions <= grant.permissions


def may_touch_member(grant: Grant, role: str, role_permissions: frozenset[str]) -> bool:
    """Rule 3: an owner's membership only by an owner; others within what the caller holds."""
    return may_grant_role(grant, role, role_permissions)


def require_grantable(grant: Grant, role: str, role_permissions: frozenset[str]) -> None:
    if not may_grant_role(grant, role, role_permissions):
        raise insufficient_role()


def require_touchable(grant: Grant, role: str, role_permissions: frozenset[str]) -> None:
    if not may_touch_member(grant, role, role_permissions):
        raise insufficient_role()


def require_subset(grant: Grant, permissions: Iterable[str]) -> None:
    """Rules 4 and 5: every permission of a new or current set is held by the caller."""
    if not set(permissions) <= grant.permissions:
        raise insufficient_role()


def checked_permissions(
    catalog: PermissionCatalog, grant: Grant, permissions: Iterable[str]
) -> list[str]:
    """A new permission set (a custom role's, an API key's): every key in the catalog
    (422 ``UNKNOWN_PERMISSION``) and held by the caller (403, rule 5); duplicates dropped,
    sorted."""
    keys = sorted(set(permissions))
    unknown = catalog.unknown(keys)
    if unknown:
        raise UnprocessableError(
            f"Unknown permission: {', '.join(unknown)}.", code=ErrorCode.UNKNOWN_PERMISSION
        )
    require_subset(grant, keys)
    return keys


def require_owner(grant: Grant) -> None:
    """Rule 6: owner-role actions, held by no permission."""
    if not grant.owner:
        raise insufficient_role()


def require_superuser(is_superuser: bool) -> None:
    """The admin API's one rule: superusers only (403 ``SUPERUSER_REQUIRED``)."""
    if not is_superuser:
        raise PermissionDeniedError(
            "Superuser privileges are required.", code=ErrorCode.SUPERUSER_REQUIRED
        )


# --- the built-in roles' matrix, as the catalog derives it (docs/API.md) -------------------


class OrgAction(enum.StrEnum):
    """The organization routes' actions, each checked by one permission."""

    VIEW = "view"
    LIST_MEMBERS = "list_members"
    UPDATE = "update"
    CHANGE_SLUG = "change_slug"
    DELETE = "delete"
    ADD_MEMBER = "add_member"
    CHANGE_ROLE = "change_role"
    REMOVE_MEMBER = "remove_member"
    LEAVE = "leave"


#: The permission each action needs (None: leaving needs none).
ACTION_PERMISSIONS: dict[OrgAction, str | None] = {
    OrgAction.VIEW: "organization:read",
    OrgAction.LIST_MEMBERS: "members:read",
    OrgAction.UPDATE: "organization:update",
    OrgAction.CHANGE_SLUG: "organization:update",
    OrgAction.DELETE: "organization:delete",
    OrgAction.ADD_MEMBER: "members:add",
    OrgAction.CHANGE_ROLE: "members:update",
    OrgAction.REMOVE_MEMBER: "members:remove",
    OrgAction.LEAVE: None,
}
_GRANTING = (OrgAction.ADD_MEMBER, OrgAction.CHANGE_ROLE)
_TOUCHING = (OrgAction.CHANGE_ROLE, OrgAction.REMOVE_MEMBER)
_DEFAULT_CATALOG = PermissionCatalog()


def built_in_grant(role: OrgRole) -> Grant:
    granted = _DEFAULT_CATALOG.grant(str(role), is_superuser=False)
    assert granted is not None
    return granted


def is_allowed(
    actor: OrgRole,
    action: OrgAction,
    *,
    target_role: OrgRole | None = None,
    new_role: OrgRole | None = None,
) -> bool:
    """True when a member with the built-in role ``actor`` may perform ``action`` (on a
    member whose role is ``target_role``, handing out ``new_role``)."""
    grant = built_in_grant(actor)
    permission = ACTION_PERMISSIONS[action]
    if permission is None:
        return True
    if not grant.holds(permission):
        return False
    roles = _DEFAULT_CATALOG.built_in_roles
    if target_role is not None and not may_touch_member(grant, target_role, roles[target_role]):
        return False
    return new_role is None or may_grant_role(grant, new_role, roles[new_role])


def authorize(
    actor: OrgRole,
    action: OrgAction,
    *,
    target_role: OrgRole | None = None,
    new_role: OrgRole | None = None,
) -> None:
    """Raise 403 ``INSUFFICIENT_ROLE`` unless the built-in roles' matrix allows the action."""
    if not is_allowed(actor, action, target_role=target_role, new_role=new_role):
        raise insufficient_role()


def _matrix(actions: Sequence[OrgAction], *, granting: bool) -> dict[OrgRole, frozenset[OrgRole]]:
    def allowed(actor: OrgRole, other: OrgRole) -> bool:
        return any(
            is_allowed(actor, action, new_role=other)
            if granting
            else is_allowed(actor, action, target_role=other)
            for action in actions
        )

    return {
        actor: frozenset(other for other in OrgRole if allowed(actor, other)) for actor in OrgRole
    }


#: Which built-in roles may perform each action at all.
ACTION_ROLES: dict[OrgAction, frozenset[OrgRole]] = {
    action: frozenset(role for role in OrgRole if is_allowed(role, action)) for action in OrgAction
}
#: Which roles each built-in role may hand out (adding a member or changing a role).
GRANTABLE_ROLES: dict[OrgRole, frozenset[OrgRole]] = _matrix(_GRANTING, granting=True)
#: Whose membership each built-in role may change or remove (by the target's role).
MANAGEABLE_ROLES: dict[OrgRole, frozenset[OrgRole]] = _matrix(_TOUCHING, granting=False)


def effective_role(role: OrgRole | str | None, *, is_superuser: bool) -> OrgRole | None:
    """The built-in role a user acts with: superusers act as owners."""
    if is_superuser:
        return OrgRole.OWNER
    return OrgRole(role) if role is not None else None


def role_at_least(actual: OrgRole, required: OrgRole) -> bool:
    """Role hierarchy: owner > admin > member."""
    return actual.rank >= required.rank
