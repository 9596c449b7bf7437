"""Organizations and memberships (docs/API.md), shared by the member routes and the admin API.

Every change to an organization or its members starts by locking the organization row
(a no-op ``UPDATE`` as the transaction's first statement). On PostgreSQL that is a row
lock; on SQLite it takes the database write lock. Either way, concurrent changes to one
organization run one after another, so rules that depend on other rows — above all
"the last owner stays" — hold under concurrency.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, case, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from orgauth.audit import audit
from orgauth.data.statements import affected_rows
from orgauth.errors import ConflictError, ErrorCode, NotFoundError, PermissionDeniedError
from orgauth.hooks import Hooks
from orgauth.lengths import SLUG_MAX_LENGTH
from orgauth.models import Membership, Organization, OrgRole, User, utcnow
from orgauth.services.permissions import (
    OrgAction,
    authorize,
    effective_role,
    insufficient_role,
    role_at_least,
)
from orgauth.validation import InvalidEmailError, normalize_email

_NON_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Actor:
    """Who performs an organization operation."""

    user_id: uuid.UUID
    is_superuser: bool = False

    @classmethod
    def of(cls, user: User) -> Actor:
        return cls(user_id=user.id, is_superuser=user.is_superuser)


@dataclass(frozen=True)
class OrgView:
    """An organization with its member count (and the actor's own role, if a member)."""

    organization: Organization
    member_count: int
    role: OrgRole | None = None


@dataclass(frozen=True)
class MemberView:
    user_id: uuid.UUID
    email: str
    first_name: str | None
    last_name: str | None
    role: OrgRole
    joined_at: Any


# --- errors --------------------------------------------------------------------------


def org_not_found() -> NotFoundError:
    return NotFoundError("Organization not found.", code=ErrorCode.ORGANIZATION_NOT_FOUND)


def member_not_found() -> NotFoundError:
    return NotFoundError("Member not found.", code=ErrorCode.MEMBER_NOT_FOUND)


def slug_taken() -> ConflictError:
    return ConflictError("That slug is already in use.", code=ErrorCode.SLUG_TAKEN)


def already_member() -> ConflictError:
    return ConflictError("The user is already a member.", code=ErrorCode.ALREADY_MEMBER)


def last_owner() -> ConflictError:
    return ConflictError("An organization must keep at least one owner.", code=ErrorCode.LAST_OWNER)


# --- helpers -------------------------------------------------------------------------


def slugify(name: str) -> str:
    """A URL-safe slug from a name: ASCII, lower case, hyphen-separated, at most 64 chars."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = _NON_SLUG.sub("-", ascii_name.lower()).strip("-")[:SLUG_MAX_LENGTH].strip("-")
    return slug or "org"


def escape_like(term: str) -> str:
    """Escape LIKE wildcards so user search terms match literally."""
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains(column: Any, term: str) -> Any:
    """Case-insensitive literal substring match."""
    return col(column).ilike(f"%{escape_like(term)}%", escape="\\")


def member_count_expr() -> Any:
    return (
        select(func.count())
        .where(col(Membership.organization_id) == col(Organization.id))
        .correlate(Organization)
        .scalar_subquery()
    )


async def _lock_organization(db: AsyncSession, org_id: uuid.UUID) -> bool:
    """Serialise changes to one organization; False when it does not exist."""
    result = await db.execute(
        update(Organization)
        .where(col(Organization.id) == org_id)
        .values(updated_at=col(Organization.updated_at))
        .execution_options(synchronize_session=False)
    )
    return affected_rows(result) == 1


async def _role_of(db: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID) -> OrgRole | None:
    role = await db.scalar(
        select(col(Membership.role)).where(
            col(Membership.organization_id) == org_id, col(Membership.user_id) == user_id
        )
    )
    return OrgRole(role) if role is not None else None


async def _acting_role(db: AsyncSession, actor: Actor, org_id: uuid.UUID) -> OrgRole:
    """The actor's role in a locked organization; non-members get the same 404."""
    role = effective_role(
        await _role_of(db, org_id, actor.user_id), is_superuser=actor.is_superuser
    )
    if role is None:
        raise org_not_found()
    return role


@dataclass(frozen=True)
class Remainder:
    """What an organization keeps once some of its members are gone (or demoted)."""

    organization_id: uuid.UUID
    owners: int
    members: int
    departing_owners: frozenset[uuid.UUID]


async def remainders(
    db: AsyncSession,
    *,
    leaving: Collection[uuid.UUID],
    org_ids: Collection[uuid.UUID] | None = None,
) -> list[Remainder]:
    """The last-owner rule's one count: for every organization in which one of ``leaving``
    is an owner (only those in ``org_ids`` when given), the owners and members that stay
    when all of ``leaving`` go at once. Counting the whole batch is what keeps two owners
    removed together from leaving an organization without one. Two queries.
    """
    leaving = list(leaving)
    owned = select(col(Membership.organization_id), col(Membership.user_id)).where(
        col(Membership.user_id).in_(leaving), col(Membership.role) == OrgRole.OWNER
    )
    if org_ids is not None:
        owned = owned.where(col(Membership.organization_id).in_(list(org_ids)))
    departing: dict[uuid.UUID, set[uuid.UUID]] = {}
    for org_id, user_id in (await db.execute(owned)).all():
        departing.setdefault(org_id, set()).add(user_id)
    if not departing:
        return []
    staying = col(Membership.user_id).not_in(leaving)
    is_owner = col(Membership.role) == OrgRole.OWNER
    counts = await db.execute(
        select(
            col(Membership.organization_id),
            func.coalesce(func.sum(case((staying & is_owner, 1), else_=0)), 0),
            func.coalesce(func.sum(case((staying, 1), else_=0)), 0),
        )
        .where(col(Membership.organization_id).in_(list(departing)))
        .group_by(col(Membership.organization_id))
    )
    return [
        Remainder(org_id, int(owners), int(members), frozenset(departing[org_id]))
        for org_id, owners, members in counts.all()
    ]


async def _require_another_owner(db: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Member routes: the user may stop being an owner only if another owner stays."""
    for remainder in await remainders(db, leaving=[user_id], org_ids=[org_id]):
        if remainder.owners == 0:
            raise last_owner()


# --- reading -------------------------------------------------------------------------


async def get_organization(db: AsyncSession, actor: Actor, org_id: uuid.UUID) -> OrgView:
    """An organization the actor belongs to (superusers: any); else 404. One query."""
    my_role = (
        select(col(Membership.role))
        .where(
            col(Membership.organization_id) == col(Organization.id),
            col(Membership.user_id) == actor.user_id,
        )
        .correlate(Organization)
        .scalar_subquery()
    )
    row = (
        await db.execute(
            select(Organization, member_count_expr(), my_role).where(col(Organization.id) == org_id)
        )
    ).one_or_none()
    if row is None:
        raise org_not_found()
    organization, count, role = row
    acting = effective_role(role, is_superuser=actor.is_superuser)
    if acting is None:
        raise org_not_found()
    return OrgView(organization, int(count), OrgRole(role) if role else None)


async def require_role(
    db: AsyncSession, actor: Actor, org_id: uuid.UUID, action: OrgAction
) -> OrgView:
    """Load an organization and check that the actor may perform ``action`` on it."""
    view = await get_organization(db, actor, org_id)
    acting = effective_role(view.role, is_superuser=actor.is_superuser)
    assert acting is not None  # get_organization raised otherwise
    authorize(acting, action)
    return view


async def list_my_organizations(db: AsyncSession, user_id: uuid.UUID) -> list[OrgView]:
    """The organizations a user belongs to, with their role, in one query."""
    rows = await db.execute(
        select(Organization, member_count_expr(), col(Membership.role))
        .join(Membership, col(Membership.organization_id) == col(Organization.id))
        .where(col(Membership.user_id) == user_id)
        .order_by(col(Organization.name), col(Organization.id))
    )
    return [OrgView(org, int(count), OrgRole(role)) for org, count, role in rows.all()]


async def list_organizations(
    db: AsyncSession, *, page: int, limit: int, search: str | None = None
) -> tuple[list[OrgView], int]:
    """Every organization (admin), newest first, with member counts: two queries."""
    conditions = []
    if search:
        conditions.append(
            or_(contains(Organization.name, search), contains(Organization.slug, search))
        )
    total = await db.scalar(select(func.count()).select_from(Organization).where(*conditions))
    rows = await db.execute(
        select(Organization, member_count_expr())
        .where(*conditions)
        .order_by(col(Organization.created_at).desc(), col(Organization.id))
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return [OrgView(org, int(count)) for org, count in rows.all()], int(total or 0)


def _members_query(
    org_id: uuid.UUID, role: OrgRole | None, search: str | None
) -> Select[*tuple[Any, ...]]:
    query = (
        select(
            col(Membership.user_id),
            col(User.email),
            col(User.first_name),
            col(User.last_name),
            col(Membership.role),
            col(Membership.joined_at),
        )
        .join(User, col(User.id) == col(Membership.user_id))
        .where(col(Membership.organization_id) == org_id)
    )
    if role is not None:
        query = query.where(col(Membership.role) == role)
    if search:
        query = query.where(
            or_(
                contains(User.email, search),
                contains(User.first_name, search),
                contains(User.last_name, search),
            )
        )
    return query


async def list_members(
    db: AsyncSession,
    *,
    org_id: uuid.UUID,
    page: int,
    limit: int,
    role: OrgRole | None = None,
    search: str | None = None,
) -> tuple[list[MemberView], int]:
    """One page of members (oldest first) and the total: two queries."""
    query = _members_query(org_id, role, search)
    if search:
        total = await db.scalar(select(func.count()).select_from(query.subquery()))
    else:
        # Without a search the users table is not needed: an index-only count.
        counted = select(func.count()).where(col(Membership.organization_id) == org_id)
        if role is not None:
            counted = counted.where(col(Membership.role) == role)
        total = await db.scalar(counted)
    rows = await db.execute(
        query.order_by(col(Membership.joined_at), col(Membership.user_id))
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return [_member(row) for row in rows.all()], int(total or 0)


def _member(row: Any) -> MemberView:
    user_id, email, first_name, last_name, role, joined_at = row
    return MemberView(user_id, email, first_name, last_name, OrgRole(role), joined_at)


async def _member_view(db: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID) -> MemberView:
    row = (
        await db.execute(
            _members_query(org_id, None, None).where(col(Membership.user_id) == user_id)
        )
    ).one_or_none()
    if row is None:
        raise member_not_found()
    return _member(row)


# --- writing -------------------------------------------------------------------------


async def _available_slug(db: AsyncSession, base: str) -> str:
    taken = await db.scalar(select(func.count()).where(col(Organization.slug) == base))
    if not taken:
        return base
    suffix = secrets.token_hex(3)
    return f"{base[: SLUG_MAX_LENGTH - len(suffix) - 1].rstrip('-')}-{suffix}"


async def create_organization(
    db: AsyncSession,
    *,
    name: str,
    slug: str | None,
    description: str | None,
    owner_id: uuid.UUID,
    actor: Actor,
    hooks: Hooks,
    users_may_create: bool = True,
) -> OrgView:
    """Create an organization whose owner is ``owner_id``; 409 SLUG_TAKEN on a clash.

    ``users_may_create`` is ``ALLOW_USER_ORG_CREATION``: when false, only superusers may.
    """
    if not users_may_create and not actor.is_superuser:
        raise PermissionDeniedError(
            "Only administrators can create organizations.",
            code=ErrorCode.ORG_CREATION_DISABLED,
        )
    if owner_id != actor.user_id:
        exists = await db.scalar(select(func.count()).where(col(User.id) == owner_id))
        if not exists:
            raise NotFoundError("User not found.", code=ErrorCode.USER_NOT_FOUND)
    final_slug = slug if slug is not None else await _available_slug(db, slugify(name))
    now = utcnow()
    organization = Organization(
        name=name, slug=final_slug, description=description, created_at=now, updated_at=now
    )
    db.add(organization)
    try:
        await db.flush()  # the slug's unique index answers here
    except IntegrityError:
        await db.rollback()
        raise slug_taken() from None
    db.add(
        Membership(
            organization_id=organization.id, user_id=owner_id, role=OrgRole.OWNER, joined_at=now
        )
    )
    await db.commit()
    audit(
        "organization.created",
        actor_id=actor.user_id,
        organization_id=organization.id,
        owner_id=owner_id,
    )
    await hooks.after_member_added(organization.id, owner_id, OrgRole.OWNER)
    return OrgView(organization, 1, OrgRole.OWNER)


async def update_organization(
    db: AsyncSession, actor: Actor, org_id: uuid.UUID, changes: dict[str, Any]
) -> OrgView:
    """Apply name/slug/description changes (admins and owners)."""
    if not await _lock_organization(db, org_id):
        raise org_not_found()
    acting = await _acting_role(db, actor, org_id)
    authorize(acting, OrgAction.UPDATE)
    if "slug" in changes:
        authorize(acting, OrgAction.CHANGE_SLUG)
    try:
        if changes:
            # The slug's unique index answers at the UPDATE itself, not only at commit.
            await db.execute(
                update(Organization)
                .where(col(Organization.id) == org_id)
                .values(**changes, updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
        await db.commit()
    except IntegrityError:
        await db.rollback()
        raise slug_taken() from None
    audit(
        "organization.updated",
        actor_id=actor.user_id,
        organization_id=org_id,
        fields=",".join(sorted(changes)),
    )
    return await get_organization(db, actor, org_id)


async def delete_organization(db: AsyncSession, actor: Actor, org_id: uuid.UUID) -> None:
    """Delete an organization and its memberships (owners only)."""
    if not await _lock_organization(db, org_id):
        raise org_not_found()
    authorize(await _acting_role(db, actor, org_id), OrgAction.DELETE)
    await db.execute(delete(Organization).where(col(Organization.id) == org_id))
    await db.commit()
    audit("organization.deleted", actor_id=actor.user_id, organization_id=org_id)


async def add_member(
    db: AsyncSession,
    actor: Actor,
    org_id: uuid.UUID,
    *,
    role: OrgRole,
    hooks: Hooks,
    user_id: uuid.UUID | None = None,
    email: str | None = None,
) -> MemberView:
    """Add an existing user by id or email; 409 if already a member."""
    if not await _lock_organization(db, org_id):
        raise org_not_found()
    authorize(await _acting_role(db, actor, org_id), OrgAction.ADD_MEMBER, new_role=role)
    target = await _find_user(db, user_id=user_id, email=email)
    if await _role_of(db, org_id, target) is not None:
        raise already_member()
    db.add(Membership(organization_id=org_id, user_id=target, role=role, joined_at=utcnow()))
    try:
        await db.commit()
    except IntegrityError:
        await db.rollback()
        raise already_member() from None
    audit(
        "member.added",
        actor_id=actor.user_id,
        organization_id=org_id,
        user_id=target,
        role=str(role),
    )
    await hooks.after_member_added(org_id, target, role)
    return await _member_view(db, org_id, target)


async def _find_user(
    db: AsyncSession, *, user_id: uuid.UUID | None, email: str | None
) -> uuid.UUID:
    if user_id is not None:
        found = await db.scalar(select(col(User.id)).where(col(User.id) == user_id))
    else:
        try:
            normalized = normalize_email(email or "")
        except InvalidEmailError:
            normalized = ""
        found = await db.scalar(select(col(User.id)).where(col(User.email) == normalized))
    if found is None:
        raise NotFoundError("User not found.", code=ErrorCode.USER_NOT_FOUND)
    return found


async def change_role(
    db: AsyncSession, actor: Actor, org_id: uuid.UUID, user_id: uuid.UUID, role: OrgRole
) -> MemberView:
    """Change a member's role; the last owner can never be demoted (409 LAST_OWNER)."""
    if not await _lock_organization(db, org_id):
        raise org_not_found()
    acting = await _acting_role(db, actor, org_id)
    authorize(acting, OrgAction.CHANGE_ROLE)
    current = await _role_of(db, org_id, user_id)
    if current is None:
        raise member_not_found()
    authorize(acting, OrgAction.CHANGE_ROLE, target_role=current, new_role=role)
    if current is OrgRole.OWNER and role is not OrgRole.OWNER:
        await _require_another_owner(db, org_id, user_id)
    if current is not role:
        await db.execute(
            update(Membership)
            .where(col(Membership.organization_id) == org_id, col(Membership.user_id) == user_id)
            .values(role=role)
            .execution_options(synchronize_session=False)
        )
    await db.commit()
    audit(
        "member.role_changed",
        actor_id=actor.user_id,
        organization_id=org_id,
        user_id=user_id,
        old_role=str(current),
        new_role=str(role),
    )
    return await _member_view(db, org_id, user_id)


async def remove_member(
    db: AsyncSession, actor: Actor, org_id: uuid.UUID, user_id: uuid.UUID, *, hooks: Hooks
) -> None:
    """Remove a member, or leave when it is the actor; the last owner always stays."""
    if not await _lock_organization(db, org_id):
        raise org_not_found()
    acting = await _acting_role(db, actor, org_id)
    leaving = user_id == actor.user_id
    if not leaving:
        authorize(acting, OrgAction.REMOVE_MEMBER)
    current = await _role_of(db, org_id, user_id)
    if current is None:
        raise member_not_found()
    if leaving:
        authorize(acting, OrgAction.LEAVE)
    else:
        authorize(acting, OrgAction.REMOVE_MEMBER, target_role=current)
    if current is OrgRole.OWNER:
        await _require_another_owner(db, org_id, user_id)
    await db.execute(
        delete(Membership).where(
            col(Membership.organization_id) == org_id, col(Membership.user_id) == user_id
        )
    )
    await db.commit()
    audit(
        "member.left" if leaving else "member.removed",
        actor_id=actor.user_id,
        organization_id=org_id,
        user_id=user_id,
        role=str(current),
    )
    await hooks.after_member_removed(org_id, user_id)


async def require_membership(
    db: AsyncSession, *, org_id: uuid.UUID, user: User, role: OrgRole
) -> Membership:
    """The user's membership with at least ``role`` (``require_org_role``'s one rule).

    Superusers get a synthetic owner membership when the organization exists. Non-members
    and unknown organizations: 404; a lower role: 403 ``INSUFFICIENT_ROLE``.
    """
    membership = await db.scalar(
        select(Membership).where(
            col(Membership.organization_id) == org_id, col(Membership.user_id) == user.id
        )
    )
    if membership is None and user.is_superuser:
        exists = await db.scalar(select(func.count()).where(col(Organization.id) == org_id))
        if exists:
            membership = Membership(organization_id=org_id, user_id=user.id, role=OrgRole.OWNER)
    if membership is None:
        raise org_not_found()
    acting = effective_role(membership.role, is_superuser=user.is_superuser)
    assert acting is not None
    if not role_at_least(acting, role):
        raise insufficient_role()
    return membership
