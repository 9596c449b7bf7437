"""Custom organization roles and the permission catalog as an organization sees it
(docs/API.md, "Roles and permissions").

Create, update and delete take the organization lock (like membership changes), so a role
can never be deleted while an assignment of it commits: no membership is ever left
pointing at a missing role.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from orgauth import events
from orgauth.errors import ConflictError, ErrorCode, NotFoundError
from orgauth.events import record
from orgauth.models import Invitation, Membership, OrganizationRole, utcnow
from orgauth.representations import as_data, role_read
from orgauth.services.organizations import (
    Actor,
    acting_grant,
    live_invitation,
    lock_organization,
    org_not_found,
)
from orgauth.services.permissions import (
    BUILT_IN_KEYS,
    BUILT_IN_ROLE_NAMES,
    Grant,
    OrgPermission,
    checked_permissions,
    is_role_key,
    require_permission,
    require_subset,
)

#: At most this many custom roles per organization.
MAX_CUSTOM_ROLES = 50


@dataclass(frozen=True)
class RoleView:
    key: str
    name: str
    description: str | None
    permissions: list[str]
    built_in: bool
    member_count: int
    created_at: datetime | None = None
    updated_at: datetime | None = None


# --- errors ---------------------------------------------------------------------------


def role_not_found() -> NotFoundError:
    return NotFoundError("Role not found.", code=ErrorCode.ROLE_NOT_FOUND)


def built_in_role() -> ConflictError:
    return ConflictError(
        "Built-in roles cannot be changed or deleted.", code=ErrorCode.BUILT_IN_ROLE
    )


# --- reading --------------------------------------------------------------------------


async def _member_counts(db: AsyncSession, org_id: uuid.UUID) -> dict[str, int]:
    rows = await db.execute(
        select(col(Membership.role), func.count())
        .where(col(Membership.organization_id) == org_id)
        .group_by(col(Membership.role))
    )
    return {role: int(count) for role, count in rows.all()}


def _custom_view(actor: Actor, row: OrganizationRole, member_count: int) -> RoleView:
    return RoleView(
        key=row.key,
        name=row.name,
        description=row.description,
        permissions=sorted(actor.catalog.role_permissions(row.key, row.permissions)),
        built_in=False,
        member_count=member_count,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def list_roles(db: AsyncSession, actor: Actor, org_id: uuid.UUID) -> list[RoleView]:
    """The built-in roles, then the custom ones by key, with member counts."""
    require_permission(await acting_grant(db, actor, org_id), "organization:read")
    counts = await _member_counts(db, org_id)
    built_in = [
        RoleView(
            key=key,
            name=name,
            description=None,
            permissions=sorted(actor.catalog.role_permissions(key)),
            built_in=True,
            member_count=counts.get(key, 0),
        )
        for key, name in BUILT_IN_ROLE_NAMES.items()
    ]
    rows = await db.scalars(
        select(OrganizationRole).where(col(OrganizationRole.organization_id) == org_id)
    )
    # Sorted here, not by ORDER BY: the database's collation (an English one puts "a_b"
    # before "a-b" and "a1") would make the order differ between databases.
    custom = sorted(rows, key=lambda row: row.key)
    return built_in + [_custom_view(actor, row, counts.get(row.key, 0)) for row in custom]


async def list_permissions(
    db: AsyncSession, actor: Actor, org_id: uuid.UUID
) -> list[tuple[OrgPermission, bool]]:
    """The catalog, sorted by key, each with whether it is built in."""
    require_permission(await acting_grant(db, actor, org_id), "organization:read")
    return [(p, p.key in BUILT_IN_KEYS) for p in actor.catalog.permissions.values()]


# --- writing --------------------------------------------------------------------------


async def _managing_grant(db: AsyncSession, actor: Actor, org_id: uuid.UUID) -> Grant:
    """Lock the organization; the actor must hold ``roles:manage`` in it."""
    if not await lock_organization(db, org_id):
        raise org_not_found()
    grant = await acting_grant(db, actor, org_id)
    require_permission(grant, "roles:manage")
    return grant


async def _custom_role(
    db: AsyncSession, actor: Actor, org_id: uuid.UUID, key: str
) -> OrganizationRole:
    if actor.catalog.is_built_in_role(key):
        raise built_in_role()
    if not is_role_key(key):
        raise role_not_found()
    row = await db.scalar(
        select(OrganizationRole).where(
            col(OrganizationRole.organization_id) == org_id, col(OrganizationRole.key) == key
        )
    )
    if row is None:
        raise role_not_found()
    return row


async def create_role(
    db: AsyncSession,
    actor: Actor,
    org_id: uuid.UUID,
    *,
    key: str,
    name: str,
    description: str | None,
    permissions: list[str],
) -> RoleView:
    """Create a custom role holding only permissions the actor holds."""
    grant = await _managing_grant(db, actor, org_id)
    keys = checked_permissions(actor.catalog, grant, permissions)
    if actor.catalog.is_built_in_role(key):
        raise _key_taken()
    count = await db.scalar(
        select(func.count()).where(col(OrganizationRole.organization_id) == org_id)
    )
    existing = await db.scalar(
        select(func.count()).where(
            col(OrganizationRole.organization_id) == org_id, col(OrganizationRole.key) == key
        )
    )
    if existing:
        raise _key_taken()
    if int(count or 0) >= MAX_CUSTOM_ROLES:
        raise ConflictError(
            f"An organization can have at most {MAX_CUSTOM_ROLES} custom roles.",
            code=ErrorCode.ROLE_LIMIT_REACHED,
        )
    now = utcnow()
    row = OrganizationRole(
        organization_id=org_id,
        key=key,
        name=name,
        description=description,
        permissions=keys,
        created_at=now,
        updated_at=now,
    )
    db.add(row)
    view = _custom_view(actor, row, 0)
    record(
        db,
        "role.created",
        **actor.events(org_id),
        targets=[events.role(row.id)],
        data=_payload(view),
        key=key,
        permissions=keys,
    )
    try:
        await db.commit()
    except IntegrityError:  # the (organization, key) unique index, should the lock be bypassed
        await db.rollback()
        raise _key_taken() from None
    return view


def _payload(view: RoleView) -> dict[str, Any]:
    return {"role": as_data(role_read(view))}


def _key_taken() -> ConflictError:
    return ConflictError("That role key is already in use.", code=ErrorCode.ROLE_KEY_TAKEN)


async def update_role(
    db: AsyncSession, actor: Actor, org_id: uuid.UUID, key: str, changes: dict[str, Any]
) -> RoleView:
    """Change a custom role's name, description or permissions; the actor must hold both
    its current and its new permissions."""
    grant = await _managing_grant(db, actor, org_id)
    row = await _custom_role(db, actor, org_id, key)
    require_subset(grant, actor.catalog.role_permissions(key, row.permissions))
    values = dict(changes)
    if "permissions" in values:
        values["permissions"] = checked_permissions(actor.catalog, grant, values["permissions"])
    values["updated_at"] = utcnow()
    await db.execute(
        update(OrganizationRole)
        .where(col(OrganizationRole.id) == row.id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    # Read the answer while the organization lock is still held: after the commit a
    # concurrent update may already have replaced this one.
    await db.refresh(row)
    counts = await _member_counts(db, org_id)
    view = _custom_view(actor, row, counts.get(key, 0))
    record(
        db,
        "role.updated",
        **actor.events(org_id),
        targets=[events.role(row.id)],
        data=_payload(view),
        key=key,
        permissions=row.permissions,
        fields=sorted(changes),
    )
    await db.commit()
    return view


async def delete_role(db: AsyncSession, actor: Actor, org_id: uuid.UUID, key: str) -> None:
    """Delete a custom role no member or live invitation holds (409 ``ROLE_IN_USE``
    otherwise)."""
    grant = await _managing_grant(db, actor, org_id)
    row = await _custom_role(db, actor, org_id, key)
    require_subset(grant, actor.catalog.role_permissions(key, row.permissions))
    members = await db.scalar(
        select(func.count()).where(
            col(Membership.organization_id) == org_id, col(Membership.role) == key
        )
    )
    invitations = await db.scalar(
        select(func.count()).where(
            col(Invitation.organization_id) == org_id,
            col(Invitation.role) == key,
            live_invitation(utcnow()),
        )
    )
    if members or invitations:
        raise ConflictError(
            "Members or live invitations hold this role; change or revoke them first.",
            code=ErrorCode.ROLE_IN_USE,
        )
    view = _custom_view(actor, row, 0)
    await db.execute(delete(OrganizationRole).where(col(OrganizationRole.id) == row.id))
    record(
        db,
        "role.deleted",
        **actor.events(org_id),
        targets=[events.role(row.id)],
        data=_payload(view),
        key=key,
        permissions=row.permissions,
    )
    await db.commit()
