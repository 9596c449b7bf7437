"""Organizations and memberships (docs/API.md), shared by the member routes and the admin API.

Who may do what is decided by :mod:`orgauth.services.permissions`; this module fetches
what it needs — the actor's membership and role permissions, in one query — and applies
those rules in the order of docs/SECURITY.md.

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
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, and_, case, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from orgauth import events
from orgauth.data.statements import affected_rows
from orgauth.errors import (
    ConflictError,
    ErrorCode,
    NotFoundError,
    PermissionDeniedError,
    UnprocessableError,
)
from orgauth.events import EventActor, record
from orgauth.hooks import Hooks
from orgauth.lengths import SLUG_MAX_LENGTH
from orgauth.models import (
    INVITATION_PENDING,
    Invitation,
    Membership,
    Organization,
    OrganizationRole,
    OrgRole,
    User,
    utcnow,
)
from orgauth.representations import as_data, member_read, organization_read
from orgauth.security.ratelimit import AccountLimits
from orgauth.services.context import ClientInfo
from orgauth.services.permissions import (
    Grant,
    PermissionCatalog,
    insufficient_role,
    is_role_key,
    require_grantable,
    require_owner,
    require_permission,
    require_touchable,
)
from orgauth.validation import InvalidEmailError, normalize_email

if TYPE_CHECKING:
    from orgauth.services.api_keys import KeyPrincipal

_NON_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Actor:
    """Who performs an organization operation, and the catalog their roles resolve in.

    A principal is a user or an API key (``api_key`` set): for a key, ``user_id`` is its
    creator's (invitations it sends name them as inviter) and what it holds in its one
    organization was resolved when the request was authenticated.
    """

    user_id: uuid.UUID
    catalog: PermissionCatalog
    is_superuser: bool = False
    client: ClientInfo | None = None
    api_key: KeyPrincipal | None = None

    @classmethod
    def of(cls, user: User, catalog: PermissionCatalog, client: ClientInfo | None = None) -> Actor:
        return cls(user.id, catalog, is_superuser=user.is_superuser, client=client)

    @classmethod
    def of_key(
        cls, key: KeyPrincipal, catalog: PermissionCatalog, client: ClientInfo | None = None
    ) -> Actor:
        return cls(key.creator_id, catalog, client=client, api_key=key)

    @property
    def principal_id(self) -> uuid.UUID:
        """The user's or the key's id: what per-principal limits count."""
        return self.api_key.key_id if self.api_key is not None else self.user_id

    @property
    def event_actor(self) -> EventActor:
        if self.api_key is not None:
            return EventActor("api_key", self.api_key.key_id)
        return EventActor.user(self.user_id)

    def events(self, org_id: uuid.UUID) -> dict[str, Any]:
        """The fields every event this actor causes in the organization carries."""
        return {
            "actor": self.event_actor,
            "organization_id": org_id,
            "client": self.client,
        }

    def grant(self, role: str | None, stored: list[str] | None) -> Grant | None:
        return self.catalog.grant(role, stored, is_superuser=self.is_superuser)


@dataclass(frozen=True)
class OrgView:
    """An organization with its member count and, when read by an actor, what the actor
    holds in it (``role`` None for a superuser who is not a member)."""

    organization: Organization
    member_count: int
    role: str | None = None
    permissions: frozenset[str] = frozenset()


@dataclass(frozen=True)
class MemberView:
    user_id: uuid.UUID
    email: str
    first_name: str | None
    last_name: str | None
    role: str
    permissions: frozenset[str]
    joined_at: Any


@dataclass(frozen=True)
class DirectAddRules:
    """What the settings say about adding existing users directly (docs/SECURITY.md,
    "Adding members").

    ``enabled`` is ``ORG_DIRECT_ADD`` (false: superusers only); ``max_members`` is
    ``ORG_MAX_MEMBERS`` (0: no limit); ``limits`` counts each attempt against the caller's
    ``RATE_LIMIT_INVITE`` (None: not counted, as on the admin API).
    """

    enabled: bool = True
    max_members: int = 0
    limits: AccountLimits | None = None


@dataclass(frozen=True)
class TransferView:
    """An ownership transfer's answer: the new owner, and the caller's own membership
    afterwards (None for a superuser who is not a member)."""

    owner: MemberView
    previous_owner: MemberView | None


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


def member_limit_reached() -> ConflictError:
    return ConflictError(
        "The organization has reached its member limit.", code=ErrorCode.MEMBER_LIMIT_REACHED
    )


def direct_add_disabled() -> PermissionDeniedError:
    return PermissionDeniedError(
        "Adding members directly is disabled; invite them instead.",
        code=ErrorCode.DIRECT_ADD_DISABLED,
    )


def self_transfer() -> ConflictError:
    return ConflictError(
        "You cannot transfer ownership to yourself.", code=ErrorCode.SELF_ACTION_FORBIDDEN
    )


def unknown_role() -> UnprocessableError:
    return UnprocessableError(
        "This organization has no role with that key.", code=ErrorCode.UNKNOWN_ROLE
    )


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


async def lock_organization(db: AsyncSession, org_id: uuid.UUID) -> bool:
    """Serialise changes to one organization; False when it does not exist."""
    result = await db.execute(
        update(Organization)
        .where(col(Organization.id) == org_id)
        .values(updated_at=col(Organization.updated_at))
        .execution_options(synchronize_session=False)
    )
    return affected_rows(result) == 1


def member_of(user_id: uuid.UUID) -> ColumnElement[bool]:
    """Join condition: the user's membership of the organization being read."""
    return and_(
        col(Membership.organization_id) == col(Organization.id),
        col(Membership.user_id) == user_id,
    )


def role_of_membership() -> ColumnElement[bool]:
    """Join condition: the custom role a membership holds (no row for built-in roles)."""
    return and_(
        col(OrganizationRole.organization_id) == col(Membership.organization_id),
        col(OrganizationRole.key) == col(Membership.role),
    )


@dataclass(frozen=True)
class Access:
    """The actor's membership of one organization (None for a superuser who is not a
    member) and what they hold there."""

    membership: Membership | None
    grant: Grant


async def load_access(db: AsyncSession, actor: Actor, org_id: uuid.UUID) -> Access:
    """What the actor holds in the organization: one indexed query for the membership and
    its role's permissions (built-in roles resolve in memory). 404 for strangers, and for
    an API key anywhere but in its own organization (what it holds is already known)."""
    if actor.api_key is not None:
        if actor.api_key.organization_id != org_id:
            raise org_not_found()
        return Access(None, actor.api_key.grant)
    row = (
        await db.execute(
            select(col(Organization.id), Membership, col(OrganizationRole.permissions))
            .select_from(Organization)
            .outerjoin(Membership, member_of(actor.user_id))
            .outerjoin(OrganizationRole, role_of_membership())
            .where(col(Organization.id) == org_id)
        )
    ).one_or_none()
    if row is None:
        raise org_not_found()
    _, membership, stored = row
    grant = actor.grant(membership.role if membership else None, stored)
    if grant is None:
        raise org_not_found()
    return Access(membership, grant)


async def acting_grant(db: AsyncSession, actor: Actor, org_id: uuid.UUID) -> Grant:
    return (await load_access(db, actor, org_id)).grant


async def role_permissions(
    db: AsyncSession, catalog: PermissionCatalog, org_id: uuid.UUID, key: str
) -> frozenset[str]:
    """The permissions of one of the organization's roles; 422 ``UNKNOWN_ROLE`` when it
    has no role with that key."""
    if catalog.is_built_in_role(key):
        return catalog.role_permissions(key)
    if not is_role_key(key):
        raise unknown_role()
    stored = await db.scalar(
        select(col(OrganizationRole.permissions)).where(
            col(OrganizationRole.organization_id) == org_id, col(OrganizationRole.key) == key
        )
    )
    if stored is None:
        raise unknown_role()
    return catalog.role_permissions(key, stored)


async def _member_role(
    db: AsyncSession, catalog: PermissionCatalog, org_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[str, frozenset[str]]:
    """A member's role key and its permissions; 404 ``MEMBER_NOT_FOUND``."""
    row = (
        await db.execute(
            select(col(Membership.role), col(OrganizationRole.permissions))
            .outerjoin(OrganizationRole, role_of_membership())
            .where(col(Membership.organization_id) == org_id, col(Membership.user_id) == user_id)
        )
    ).one_or_none()
    if row is None:
        raise member_not_found()
    role, stored = row
    return role, catalog.role_permissions(role, stored)


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


def live_invitation(now: Any) -> ColumnElement[bool]:
    """An invitation that can still be accepted: pending and unexpired."""
    return and_(col(Invitation.status) == INVITATION_PENDING, col(Invitation.expires_at) > now)


async def require_member_room(
    db: AsyncSession,
    org_id: uuid.UUID,
    max_members: int,
    *,
    invitations_take_seats: bool = False,
    not_counting: uuid.UUID | None = None,
) -> None:
    """``ORG_MAX_MEMBERS`` (0 = no limit): 409 ``MEMBER_LIMIT_REACHED`` unless one more
    member fits. With ``invitations_take_seats`` (a new invitation) live invitations count
    as seats too, except ``not_counting`` (the one being replaced). Call under the
    organization lock."""
    if max_members <= 0:
        return
    taken = int(
        await db.scalar(select(func.count()).where(col(Membership.organization_id) == org_id)) or 0
    )
    if invitations_take_seats:
        counted = select(func.count()).where(
            col(Invitation.organization_id) == org_id, live_invitation(utcnow())
        )
        if not_counting is not None:
            counted = counted.where(col(Invitation.id) != not_counting)
        taken += int(await db.scalar(counted) or 0)
    if taken >= max_members:
        raise member_limit_reached()


async def _require_another_owner(db: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Member routes: the user may stop being an owner only if another owner stays."""
    for remainder in await remainders(db, leaving=[user_id], org_ids=[org_id]):
        if remainder.owners == 0:
            raise last_owner()


# --- reading -------------------------------------------------------------------------


async def get_organization(db: AsyncSession, actor: Actor, org_id: uuid.UUID) -> OrgView:
    """An organization the actor belongs to (superusers: any), with what the actor holds
    in it; else 404. One query."""
    row = (
        await db.execute(
            select(
                Organization,
                member_count_expr(),
                col(Membership.role),
                col(OrganizationRole.permissions),
            )
            .outerjoin(Membership, member_of(actor.user_id))
            .outerjoin(OrganizationRole, role_of_membership())
            .where(col(Organization.id) == org_id)
        )
    ).one_or_none()
    if row is None:
        raise org_not_found()
    organization, count, role, stored = row
    grant = actor.grant(role, stored)
    if grant is None:
        raise org_not_found()
    return OrgView(organization, int(count), role, grant.permissions)


async def require_permission_in(
    db: AsyncSession, actor: Actor, org_id: uuid.UUID, permission: str
) -> OrgView:
    """Load an organization and check that the actor holds ``permission`` in it."""
    view = await get_organization(db, actor, org_id)
    if permission not in view.permissions:
        raise insufficient_role()
    return view


async def list_my_organizations(db: AsyncSession, actor: Actor) -> list[OrgView]:
    """The organizations a user belongs to, with their role and permissions, in one query."""
    rows = await db.execute(
        select(
            Organization,
            member_count_expr(),
            col(Membership.role),
            col(OrganizationRole.permissions),
        )
        .join(Membership, member_of(actor.user_id))
        .outerjoin(OrganizationRole, role_of_membership())
        .order_by(col(Organization.name), col(Organization.id))
    )
    views = []
    for org, count, role, stored in rows.all():
        grant = actor.grant(role, stored)
        assert grant is not None  # a member always holds a grant
        views.append(OrgView(org, int(count), role, grant.permissions))
    return views


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
    org_id: uuid.UUID, role: str | None, search: str | None
) -> Select[*tuple[Any, ...]]:
    query = (
        select(
            col(Membership.user_id),
            col(User.email),
            col(User.first_name),
            col(User.last_name),
            col(Membership.role),
            col(OrganizationRole.permissions),
            col(Membership.joined_at),
        )
        .join(User, col(User.id) == col(Membership.user_id))
        .outerjoin(OrganizationRole, role_of_membership())
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
    catalog: PermissionCatalog,
    *,
    org_id: uuid.UUID,
    page: int,
    limit: int,
    role: str | None = None,
    search: str | None = None,
) -> tuple[list[MemberView], int]:
    """One page of members (oldest first) with their roles' permissions, and the total:
    two queries (three when filtering by a custom role, to tell it from an unknown key)."""
    if role is not None:
        await role_permissions(db, catalog, org_id, role)
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
    return [_member(catalog, row) for row in rows.all()], int(total or 0)


def _member(catalog: PermissionCatalog, row: Any) -> MemberView:
    user_id, email, first_name, last_name, role, stored, joined_at = row
    return MemberView(
        user_id,
        email,
        first_name,
        last_name,
        role,
        catalog.role_permissions(role, stored),
        joined_at,
    )


async def member_view(
    db: AsyncSession, catalog: PermissionCatalog, org_id: uuid.UUID, user_id: uuid.UUID
) -> MemberView:
    row = (
        await db.execute(
            _members_query(org_id, None, None).where(col(Membership.user_id) == user_id)
        )
    ).one_or_none()
    if row is None:
        raise member_not_found()
    return _member(catalog, row)


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
    record(
        db,
        "organization.created",
        **actor.events(organization.id),
        targets=[events.organization(organization.id)],
        owner_id=owner_id,
    )
    await db.commit()
    await hooks.after_member_added(organization.id, owner_id, OrgRole.OWNER)
    return OrgView(organization, 1, OrgRole.OWNER, actor.catalog.role_permissions(OrgRole.OWNER))


async def update_organization(
    db: AsyncSession, actor: Actor, org_id: uuid.UUID, changes: dict[str, Any]
) -> OrgView:
    """Apply name/slug/description changes (admins and owners)."""
    if not await lock_organization(db, org_id):
        raise org_not_found()
    require_permission(await acting_grant(db, actor, org_id), "organization:update")
    try:
        if changes:
            # The slug's unique index answers at the UPDATE itself, not only at commit.
            await db.execute(
                update(Organization)
                .where(col(Organization.id) == org_id)
                .values(**changes, updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
    except IntegrityError:
        await db.rollback()
        raise slug_taken() from None
    # Answers are read under the lock: after the commit another change may already be in.
    view = await get_organization(db, actor, org_id)
    record(
        db,
        "organization.updated",
        **actor.events(org_id),
        targets=[events.organization(org_id)],
        data={"organization": as_data(organization_read(view)), "changed": sorted(changes)},
        fields=sorted(changes),
    )
    await db.commit()
    return view


async def delete_organization(db: AsyncSession, actor: Actor, org_id: uuid.UUID) -> None:
    """Delete an organization and its memberships (owners only)."""
    if not await lock_organization(db, org_id):
        raise org_not_found()
    require_permission(await acting_grant(db, actor, org_id), "organization:delete")
    name_and_slug = (
        await db.execute(
            select(col(Organization.name), col(Organization.slug)).where(
                col(Organization.id) == org_id
            )
        )
    ).one()
    record(
        db,
        "organization.deleted",
        **actor.events(org_id),
        targets=[events.organization(org_id)],
        data={
            "organization": {
                "id": str(org_id),
                "name": name_and_slug.name,
                "slug": name_and_slug.slug,
            }
        },
    )
    # Its endpoints go with it: the event's deliveries are written while they exist.
    await events.write_outbox(db)
    await db.execute(delete(Organization).where(col(Organization.id) == org_id))
    await db.commit()


async def add_member(
    db: AsyncSession,
    actor: Actor,
    org_id: uuid.UUID,
    *,
    role: str,
    rules: DirectAddRules,
    hooks: Hooks,
    user_id: uuid.UUID | None = None,
    email: str | None = None,
) -> MemberView:
    """Add an existing user by id or email with a role the actor may grant.

    In order (docs/SECURITY.md, "Adding members"): 404 for strangers; 403
    ``DIRECT_ADD_DISABLED`` when ``rules.enabled`` is false and the actor is not a
    superuser; 403 without ``members:add``; then the attempt counts against the caller's
    ``RATE_LIMIT_INVITE`` (429), before anything about the target is looked at; the role
    (422 ``UNKNOWN_ROLE``, 403 beyond the caller's); 404 ``USER_NOT_FOUND``; 409
    ``ALREADY_MEMBER``; 409 ``MEMBER_LIMIT_REACHED``.
    """
    if not await lock_organization(db, org_id):
        raise org_not_found()
    grant = await acting_grant(db, actor, org_id)
    if not rules.enabled and not actor.is_superuser:
        raise direct_add_disabled()
    require_permission(grant, "members:add")
    if rules.limits is not None:
        # Counted before the target is looked up, so probing emails costs the allowance.
        await rules.limits.invite(actor.principal_id)
    require_grantable(grant, role, await role_permissions(db, actor.catalog, org_id, role))
    target = await _find_user(db, user_id=user_id, email=email)
    if await _is_member(db, org_id, target):
        raise already_member()
    await require_member_room(db, org_id, rules.max_members)
    db.add(Membership(organization_id=org_id, user_id=target, role=role, joined_at=utcnow()))
    try:
        await db.flush()  # the primary key still guards "already a member"
    except IntegrityError:
        await db.rollback()
        raise already_member() from None
    member = await member_view(db, actor.catalog, org_id, target)
    record(
        db,
        "member.added",
        **actor.events(org_id),
        targets=[events.user(target)],
        data={"member": as_data(member_read(member)), "source": "direct"},
        role=role,
        source="direct",
    )
    await db.commit()
    await hooks.after_member_added(org_id, target, role)
    return member


async def _is_member(db: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    found = await db.scalar(
        select(func.count()).where(
            col(Membership.organization_id) == org_id, col(Membership.user_id) == user_id
        )
    )
    return bool(found)


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
    db: AsyncSession, actor: Actor, org_id: uuid.UUID, user_id: uuid.UUID, role: str
) -> MemberView:
    """Change a member's role; the last owner can never be demoted (409 LAST_OWNER)."""
    if not await lock_organization(db, org_id):
        raise org_not_found()
    grant = await acting_grant(db, actor, org_id)
    require_permission(grant, "members:update")
    new_permissions = await role_permissions(db, actor.catalog, org_id, role)
    current, current_permissions = await _member_role(db, actor.catalog, org_id, user_id)
    require_touchable(grant, current, current_permissions)
    require_grantable(grant, role, new_permissions)
    if current == OrgRole.OWNER and role != OrgRole.OWNER:
        await _require_another_owner(db, org_id, user_id)
    if current != role:
        await _set_role(db, org_id, user_id, role)
    member = await member_view(db, actor.catalog, org_id, user_id)
    record(
        db,
        "member.role_changed",
        **actor.events(org_id),
        targets=[events.user(user_id)],
        data={"member": as_data(member_read(member)), "previous_role": current},
        old_role=current,
        new_role=role,
    )
    await db.commit()
    return member


async def transfer_ownership(
    db: AsyncSession, actor: Actor, org_id: uuid.UUID, user_id: uuid.UUID
) -> TransferView:
    """Make a member an owner and step down to ``admin`` (docs/API.md).

    Owners and superusers only: owning is held by no permission, so no custom role reaches
    it (403 ``INSUFFICIENT_ROLE``). Yourself: 409 ``SELF_ACTION_FORBIDDEN``; a user who is
    not a member: 404 ``MEMBER_NOT_FOUND``. The target becomes ``owner`` (unchanged when it
    is one); the actor's own membership, if any, becomes ``admin``; other owners stay. Both
    changes are one transaction under the organization lock, and the actor's right is read
    under it, so concurrent transfers never leave the organization without an owner.
    """
    if not await lock_organization(db, org_id):
        raise org_not_found()
    access = await load_access(db, actor, org_id)
    require_owner(access.grant)
    if user_id == actor.user_id:
        raise self_transfer()
    target_role, _ = await _member_role(db, actor.catalog, org_id, user_id)
    if target_role != OrgRole.OWNER:
        await _set_role(db, org_id, user_id, OrgRole.OWNER)
    previous = access.membership
    if previous is not None and previous.role != OrgRole.ADMIN:
        await _set_role(db, org_id, actor.user_id, OrgRole.ADMIN)
    owner = await member_view(db, actor.catalog, org_id, user_id)
    stepped_down = (
        await member_view(db, actor.catalog, org_id, actor.user_id)
        if previous is not None
        else None
    )
    record(
        db,
        "organization.ownership_transferred",
        **actor.events(org_id),
        targets=[events.organization(org_id), events.user(user_id)],
        data={
            "owner": as_data(member_read(owner)),
            "previous_owner": as_data(member_read(stepped_down)) if stepped_down else None,
        },
        previous_owner_id=actor.user_id if previous is not None else None,
    )
    await db.commit()
    return TransferView(owner, stepped_down)


async def _set_role(db: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID, role: str) -> None:
    await db.execute(
        update(Membership)
        .where(col(Membership.organization_id) == org_id, col(Membership.user_id) == user_id)
        .values(role=role)
        .execution_options(synchronize_session=False)
    )


async def remove_member(
    db: AsyncSession, actor: Actor, org_id: uuid.UUID, user_id: uuid.UUID, *, hooks: Hooks
) -> None:
    """Remove a member, or leave when it is the actor; the last owner always stays."""
    if not await lock_organization(db, org_id):
        raise org_not_found()
    grant = await acting_grant(db, actor, org_id)
    leaving = actor.api_key is None and user_id == actor.user_id  # a key never leaves
    if not leaving:
        require_permission(grant, "members:remove")
    current, current_permissions = await _member_role(db, actor.catalog, org_id, user_id)
    if not leaving:
        require_touchable(grant, current, current_permissions)
    if current == OrgRole.OWNER:
        await _require_another_owner(db, org_id, user_id)
    email = await db.scalar(select(col(User.email)).where(col(User.id) == user_id))
    await db.execute(
        delete(Membership).where(
            col(Membership.organization_id) == org_id, col(Membership.user_id) == user_id
        )
    )
    record(
        db,
        "member.left" if leaving else "member.removed",
        **actor.events(org_id),
        targets=[events.user(user_id)],
        data=removed_member(user_id, email or "", current, "left" if leaving else "removed"),
        role=current,
    )
    await db.commit()
    await hooks.after_member_removed(org_id, user_id)


def removed_member(user_id: uuid.UUID, email: str, role: str, reason: str) -> dict[str, Any]:
    """The ``member.removed`` webhook data; ``reason`` is ``removed``, ``left`` or
    ``user_deleted``."""
    return {"user_id": str(user_id), "email": email, "role": role, "reason": reason}


@dataclass(frozen=True)
class OrgAccess:
    """What ``require_org_permission`` returns: the organization and what the caller holds.

    ``user`` and ``role`` are None for an API key; ``role`` is ``owner`` for a superuser
    who is not a member.
    """

    organization_id: uuid.UUID
    user: User | None
    api_key_id: uuid.UUID | None
    role: str | None
    permissions: frozenset[str]


async def require_access(
    db: AsyncSession, actor: Actor, user: User | None, org_id: uuid.UUID, permission: str
) -> OrgAccess:
    """The caller's access to the organization when it holds ``permission`` (404 for
    strangers and other organizations' keys, 403 ``INSUFFICIENT_ROLE`` without it). One
    query for a user, none for an API key (resolved with the key)."""
    access = await load_access(db, actor, org_id)
    require_permission(access.grant, permission)
    if actor.api_key is not None:
        return OrgAccess(org_id, None, actor.api_key.key_id, None, access.grant.permissions)
    role = access.membership.role if access.membership else OrgRole.OWNER
    return OrgAccess(org_id, user, None, role, access.grant.permissions)


async def require_membership(
    db: AsyncSession, actor: Actor, org_id: uuid.UUID, role: OrgRole
) -> Membership:
    """The actor's membership when they hold every permission of the built-in ``role``
    (``require_org_role``'s one rule, so a custom role can satisfy it).

    Superusers get a synthetic owner membership when they are not members. Non-members
    and unknown organizations: 404; too little: 403 ``INSUFFICIENT_ROLE``.
    """
    access = await load_access(db, actor, org_id)
    if not actor.catalog.role_permissions(role) <= access.grant.permissions:
        raise insufficient_role()
    if access.membership is None:
        return Membership(organization_id=org_id, user_id=actor.user_id, role=OrgRole.OWNER)
    return access.membership
