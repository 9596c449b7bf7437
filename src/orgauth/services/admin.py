"""The superuser admin API (docs/API.md): users, sessions and statistics.

Organization management for superusers reuses :mod:`orgauth.services.organizations`, where
a superuser acts as an owner. Every write is an audit event.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from sqlalchemy import Row, case, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from orgauth import events
from orgauth.data.sessions import session_is_active, session_is_over
from orgauth.data.statements import affected_rows
from orgauth.errors import ConflictError, ErrorCode, NotFoundError
from orgauth.events import EventActor, record
from orgauth.models import Membership, Organization, OrgRole, User, UserSession, utcnow
from orgauth.services import sessions as session_service
from orgauth.services.auth import end_reset_tokens, validate_new_password
from orgauth.services.context import AuthContext, SessionPolicy
from orgauth.services.organizations import contains, last_owner, remainders, removed_member
from orgauth.services.verification import end_verification_tokens

SortField = Literal["created_at", "email", "last_name"]
SORT_COLUMNS: dict[str, Any] = {
    "created_at": User.created_at,
    "email": User.email,
    "last_name": User.last_name,
}


def user_not_found() -> NotFoundError:
    return NotFoundError("User not found.", code=ErrorCode.USER_NOT_FOUND)


def email_taken() -> ConflictError:
    return ConflictError("That email is already registered.", code=ErrorCode.EMAIL_TAKEN)


def _self_action() -> ConflictError:
    return ConflictError(
        "You cannot do this to your own account.", code=ErrorCode.SELF_ACTION_FORBIDDEN
    )


# --- users ---------------------------------------------------------------------------


async def list_users(
    db: AsyncSession,
    *,
    page: int,
    limit: int,
    search: str | None,
    is_active: bool | None,
    is_superuser: bool | None,
    sort_by: SortField,
    sort_order: Literal["asc", "desc"],
) -> tuple[list[User], int]:
    conditions: list[Any] = []
    if search:
        conditions.append(
            or_(
                contains(User.email, search),
                contains(User.first_name, search),
                contains(User.last_name, search),
            )
        )
    if is_active is not None:
        conditions.append(col(User.is_active).is_(is_active))
    if is_superuser is not None:
        conditions.append(col(User.is_superuser).is_(is_superuser))
    total = await db.scalar(select(func.count()).select_from(User).where(*conditions))
    column = col(SORT_COLUMNS[sort_by])
    ordering = column.asc() if sort_order == "asc" else column.desc()
    tiebreak = col(User.id).asc() if sort_order == "asc" else col(User.id).desc()
    rows = await db.execute(
        select(User)
        .where(*conditions)
        .order_by(ordering.nulls_last() if sort_by == "last_name" else ordering, tiebreak)
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return list(rows.scalars().all()), int(total or 0)


async def get_user(db: AsyncSession, user_id: uuid.UUID) -> User:
    user = await db.get(User, user_id)
    if user is None:
        raise user_not_found()
    return user


async def create_user(
    db: AsyncSession,
    ctx: AuthContext,
    *,
    actor_id: uuid.UUID,
    email: str,
    password: str,
    first_name: str | None,
    last_name: str | None,
    is_active: bool,
    is_superuser: bool,
    email_verified: bool = True,
) -> User:
    """Create an account; its address counts as verified unless ``email_verified`` is
    false (no verification email is sent either way)."""
    clean = await validate_new_password(
        ctx, password, email=email, first_name=first_name, last_name=last_name
    )
    user = User(
        email=email,
        hashed_password=await ctx.passwords.hash(clean),
        first_name=first_name,
        last_name=last_name,
        is_active=is_active,
        is_superuser=is_superuser,
        email_verified_at=utcnow() if email_verified else None,
    )
    db.add(user)
    record(
        db,
        "admin.user_created",
        actor=EventActor.user(actor_id),
        targets=[events.user(user.id)],
        is_superuser=is_superuser,
    )
    try:
        await db.commit()
    except IntegrityError:
        await db.rollback()
        raise email_taken() from None
    await ctx.hooks.after_register(user)
    return user


async def update_user(
    db: AsyncSession, *, actor_id: uuid.UUID, user_id: uuid.UUID, changes: dict[str, Any]
) -> User:
    """Update a user. Deactivation revokes every session at once; a new email address
    kills every outstanding password reset and verification link (they went to the old
    address) and counts as verified unless the same change says ``email_verified: false``.
    ``email_verified`` true sets the verification time if unset, false clears it."""
    if user_id == actor_id and (
        changes.get("is_active") is False or changes.get("is_superuser") is False
    ):
        raise _self_action()
    user = await get_user(db, user_id)
    email_changed = "email" in changes and changes["email"] != user.email
    now = utcnow()
    verified = changes.get("email_verified", True if email_changed else None)
    for field, value in changes.items():
        if field != "email_verified":
            setattr(user, field, value)
    if verified is False:
        user.email_verified_at = None
    elif verified and (email_changed or user.email_verified_at is None):
        user.email_verified_at = now
    user.updated_at = now
    db.add(user)
    if email_changed:
        await end_reset_tokens(db, user_id=user_id, now=now)
        await end_verification_tokens(db, user_id=user_id, now=now)
    revoked = 0
    if changes.get("is_active") is False:
        revoked = await session_service.revoke_user_sessions(
            db, user_ids=[user_id], reason=session_service.REASON_DEACTIVATED
        )
    record(
        db,
        "admin.user_updated",
        actor=EventActor.user(actor_id),
        targets=[events.user(user_id)],
        fields=sorted(changes),
        revoked_sessions=revoked,
    )
    try:
        await db.commit()
    except IntegrityError:
        await db.rollback()
        raise email_taken() from None
    return user


@dataclass(frozen=True)
class Deletion:
    """Who of a set of users can be deleted, and which organizations go with them."""

    deletable: list[uuid.UUID]
    blocked: set[uuid.UUID]
    emptied_organizations: set[uuid.UUID]


async def _plan_deletion(db: AsyncSession, user_ids: list[uuid.UUID]) -> Deletion:
    """Apply the last-owner rule to deleting ``user_ids`` together.

    An organization that keeps members must keep an owner: the owners among the batch
    whose departure would strand one are kept back (their organizations then keep them),
    and the count is redone for the rest, since keeping someone back changes what the
    other organizations keep. Organizations left with no member at all go with the batch.
    """
    deletable = list(user_ids)
    blocked: set[uuid.UUID] = set()
    while True:
        left = await remainders(db, leaving=deletable)
        stranding = set().union(
            *(r.departing_owners for r in left if r.owners == 0 and r.members > 0)
        )
        if not stranding:
            emptied = {r.organization_id for r in left if r.members == 0}
            return Deletion(deletable, blocked, emptied)
        blocked |= stranding
        deletable = [uid for uid in deletable if uid not in stranding]


async def _lock_owned_organizations(db: AsyncSession, user_ids: list[uuid.UUID]) -> None:
    """Lock every organization the users own, as the transaction's first statement.

    Membership changes lock their organization row first (see
    :mod:`orgauth.services.organizations`); deleting users takes the same locks before
    checking the last-owner rule, so an owner leaving at the same moment cannot leave an
    organization with members but no owner.
    """
    owned = select(col(Membership.organization_id)).where(
        col(Membership.user_id).in_(user_ids), col(Membership.role) == OrgRole.OWNER
    )
    if db.get_bind().dialect.name == "postgresql":
        # Row locks in id order, so two bulk deletes can never deadlock each other.
        await db.execute(
            select(col(Organization.id))
            .where(col(Organization.id).in_(owned))
            .order_by(col(Organization.id))
            .with_for_update()
        )
        return
    # SQLite: any write takes the database lock, which serialises the whole check.
    await db.execute(
        update(Organization)
        .where(col(Organization.id).in_(owned))
        .values(updated_at=col(Organization.updated_at))
        .execution_options(synchronize_session=False)
    )


async def delete_user(db: AsyncSession, *, actor_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Delete a user with sessions and memberships; organizations left without any member
    are deleted too, and a last owner of an organization with other members is refused."""
    if user_id == actor_id:
        raise _self_action()
    await _lock_owned_organizations(db, [user_id])
    await get_user(db, user_id)
    plan = await _plan_deletion(db, [user_id])
    if plan.blocked:
        raise last_owner()
    await _delete(db, plan, actor=EventActor.user(actor_id))
    record(
        db,
        "admin.user_deleted",
        actor=EventActor.user(actor_id),
        targets=[events.user(user_id)],
        organizations_deleted=len(plan.emptied_organizations),
    )
    await db.commit()


async def _delete(db: AsyncSession, plan: Deletion, *, actor: EventActor) -> int:
    await _record_departures(db, plan, actor)
    if plan.emptied_organizations:
        await db.execute(
            delete(Organization).where(col(Organization.id).in_(plan.emptied_organizations))
        )
    if not plan.deletable:
        return 0
    return affected_rows(await db.execute(delete(User).where(col(User.id).in_(plan.deletable))))


async def _record_departures(db: AsyncSession, plan: Deletion, actor: EventActor) -> None:
    """The organization events of a deletion: ``member.removed`` (``user_deleted``) in
    the organizations that stay, ``organization.deleted`` for the emptied ones. Their
    webhook deliveries are written before the rows go."""
    if not plan.deletable:
        return
    memberships = await db.execute(
        select(
            col(Membership.organization_id),
            col(Membership.user_id),
            col(Membership.role),
            col(User.email),
        )
        .join(User, col(User.id) == col(Membership.user_id))
        .where(col(Membership.user_id).in_(plan.deletable))
        .order_by(col(Membership.organization_id), col(Membership.user_id))
    )
    for org_id, user_id, role, email in memberships:
        if org_id in plan.emptied_organizations:
            continue
        record(
            db,
            "member.removed",
            actor=actor,
            organization_id=org_id,
            targets=[events.user(user_id)],
            data=removed_member(user_id, email, role, "user_deleted"),
            role=role,
            reason="user_deleted",
        )
    emptied = await db.execute(
        select(col(Organization.id), col(Organization.name), col(Organization.slug))
        .where(col(Organization.id).in_(plan.emptied_organizations))
        .order_by(col(Organization.id))
    )
    for org_id, name, slug in emptied:
        record(
            db,
            "organization.deleted",
            actor=actor,
            organization_id=org_id,
            targets=[events.organization(org_id)],
            data={"organization": {"id": str(org_id), "name": name, "slug": slug}},
        )
    await events.write_outbox(db)


@dataclass(frozen=True)
class BulkResult:
    affected: int
    skipped_ids: list[uuid.UUID]


async def bulk_action(
    db: AsyncSession,
    *,
    actor_id: uuid.UUID,
    action: Literal["activate", "deactivate", "delete"],
    user_ids: list[uuid.UUID],
) -> BulkResult:
    """Apply one action to up to 100 users in a bounded number of queries. The caller,
    unknown ids and (for delete) owners the last-owner rule keeps are skipped."""
    requested = list(dict.fromkeys(user_ids))
    candidates = [uid for uid in requested if uid != actor_id]
    if action == "delete":
        await _lock_owned_organizations(db, candidates)
    existing = set(
        (await db.execute(select(col(User.id)).where(col(User.id).in_(candidates)))).scalars()
    )
    targets = [uid for uid in candidates if uid in existing]
    affected = 0
    if action == "delete":
        plan = await _plan_deletion(db, targets)
        targets = plan.deletable
        affected = await _delete(db, plan, actor=EventActor.user(actor_id))
    elif targets:
        active = action == "activate"
        result = await db.execute(
            update(User)
            .where(col(User.id).in_(targets))
            .values(is_active=active, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        affected = affected_rows(result)
        if not active:
            await session_service.revoke_user_sessions(
                db, user_ids=targets, reason=session_service.REASON_DEACTIVATED
            )
    skipped_ids = [uid for uid in requested if uid not in set(targets)]
    record(
        db,
        "admin.bulk_action",
        actor=EventActor.user(actor_id),
        targets=[events.user(uid) for uid in targets],
        action=action,
        affected=affected,
        skipped=len(skipped_ids),
    )
    await db.commit()
    return BulkResult(affected=affected, skipped_ids=skipped_ids)


async def revoke_sessions(db: AsyncSession, *, actor_id: uuid.UUID, user_id: uuid.UUID) -> int:
    await get_user(db, user_id)
    revoked = await session_service.revoke_user_sessions(
        db, user_ids=[user_id], reason=session_service.REASON_ADMIN
    )
    record(
        db,
        "admin.sessions_revoked",
        actor=EventActor.user(actor_id),
        targets=[events.user(user_id)],
        revoked=revoked,
    )
    await db.commit()
    return revoked


# --- sessions ------------------------------------------------------------------------


async def list_sessions(
    db: AsyncSession,
    *,
    page: int,
    limit: int,
    user_id: uuid.UUID | None,
    active: bool | None,
    policy: SessionPolicy = SessionPolicy(),
) -> tuple[Sequence[Row[*tuple[Any, ...]]], int]:
    """One page of sessions, most recently used first; each row has every ``user_sessions``
    column and ``is_active`` (an idle session is not active)."""
    now = utcnow()
    idle_since = policy.idle_since(now)
    conditions: list[Any] = []
    if user_id is not None:
        conditions.append(col(UserSession.user_id) == user_id)
    if active is True:
        conditions.append(session_is_active(now, idle_since))
    elif active is False:
        conditions.append(session_is_over(now, idle_since))
    total = await db.scalar(select(func.count()).select_from(UserSession).where(*conditions))
    rows = await db.execute(
        select(
            *UserSession.__table__.columns,  # type: ignore[attr-defined]
            session_is_active(now, idle_since).label("is_active"),
        )
        .where(*conditions)
        .order_by(col(UserSession.last_used_at).desc(), col(UserSession.id))
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return rows.all(), int(total or 0)


# --- statistics ----------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    users_total: int
    users_active: int
    superusers: int
    organizations: int
    active_sessions: int
    registrations: list[tuple[date, int]]


async def stats(db: AsyncSession, policy: SessionPolicy = SessionPolicy()) -> Stats:
    """Counts computed by the database (four aggregate queries, no rows loaded)."""
    now = utcnow()
    users = (
        await db.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((col(User.is_active).is_(True), 1), else_=0)), 0),
                func.coalesce(func.sum(case((col(User.is_superuser).is_(True), 1), else_=0)), 0),
            ).select_from(User)
        )
    ).one()
    organizations = await db.scalar(select(func.count()).select_from(Organization))
    active_sessions = await db.scalar(
        select(func.count())
        .select_from(UserSession)
        .where(session_is_active(now, policy.idle_since(now)))
    )
    since = (now - timedelta(days=29)).replace(hour=0, minute=0, second=0, microsecond=0)
    day = _utc_day(db)
    rows = await db.execute(
        select(day, func.count())
        .select_from(User)
        .where(col(User.created_at) >= since)
        .group_by(day)
        .order_by(day)
    )
    registrations = [(_as_date(value), int(count)) for value, count in rows.all()]
    return Stats(
        users_total=int(users[0]),
        users_active=int(users[1]),
        superusers=int(users[2]),
        organizations=int(organizations or 0),
        active_sessions=int(active_sessions or 0),
        registrations=registrations,
    )


def _utc_day(db: AsyncSession) -> Any:
    dialect = db.get_bind().dialect.name
    if dialect == "postgresql":
        return func.date(func.timezone("UTC", col(User.created_at))).label("day")
    return func.date(col(User.created_at)).label("day")


def _as_date(value: Any) -> date:
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
