"""Organization invitations: invite, resend, revoke, list, accept and decline
(docs/API.md, "Invitations").

The rules of docs/SECURITY.md ("Invitations") live here:

* the ``oa_inv_`` token exists only in the email; rows keep its SHA-256 hash;
* one live invitation per (organization, email): a new one revokes the previous pending
  row in the same transaction, held by the organization lock and a partial unique index;
* every change runs under the organization lock (services/organizations.py), so the
  pending and member limits hold under concurrency;
* an accept re-checks the inviter (still active, still allowed to invite and to grant the
  role) and claims the row with one conditional ``UPDATE … WHERE status = 'pending'``:
  of concurrent accepts exactly one wins, also across workers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from orgauth import events
from orgauth.email import build_invitation_url, invitation_message
from orgauth.errors import (
    BadRequestError,
    ConflictError,
    ErrorCode,
    NotFoundError,
    PermissionDeniedError,
    UnprocessableError,
)
from orgauth.events import SYSTEM, EventActor, record
from orgauth.models import (
    INVITATION_ACCEPTED,
    INVITATION_DECLINED,
    INVITATION_EXPIRED,
    INVITATION_PENDING,
    INVITATION_REVOKED,
    Invitation,
    Membership,
    Organization,
    OrganizationRole,
    User,
    utcnow,
)
from orgauth.representations import as_data, invitation_read, member_read
from orgauth.security.tokens import (
    INVITATION_TOKEN_PREFIX,
    hash_token,
    invitation_token_hash,
    new_opaque_token,
)
from orgauth.services.context import AuthContext, ClientInfo
from orgauth.services.delivery import deliver
from orgauth.services.organizations import (
    Actor,
    MemberView,
    acting_grant,
    already_member,
    live_invitation,
    lock_organization,
    member_view,
    org_not_found,
    require_member_room,
    role_permissions,
)
from orgauth.services.permissions import (
    PermissionCatalog,
    require_grantable,
    require_permission,
)

MANAGE = "invitations:manage"


# --- errors --------------------------------------------------------------------------


def invalid_invitation() -> BadRequestError:
    return BadRequestError(
        "The invitation is invalid, has expired or was withdrawn.",
        code=ErrorCode.INVALID_INVITATION,
    )


def invitation_not_found() -> NotFoundError:
    return NotFoundError("Invitation not found.", code=ErrorCode.INVITATION_NOT_FOUND)


def invitation_not_pending() -> ConflictError:
    return ConflictError(
        "The invitation is no longer pending.", code=ErrorCode.INVITATION_NOT_PENDING
    )


def email_mismatch() -> PermissionDeniedError:
    return PermissionDeniedError(
        "This invitation is for another email address.",
        code=ErrorCode.INVITATION_EMAIL_MISMATCH,
    )


def email_not_verified() -> PermissionDeniedError:
    return PermissionDeniedError(
        "Verify your email address first.", code=ErrorCode.EMAIL_NOT_VERIFIED
    )


# --- views ---------------------------------------------------------------------------


@dataclass(frozen=True)
class InvitationView:
    """An invitation as the API shows it: ``status`` reads ``expired`` for a pending row
    past its ``expires_at``."""

    invitation: Invitation
    organization_name: str
    status: str

    @classmethod
    def of(cls, invitation: Invitation, organization_name: str, now: datetime) -> InvitationView:
        status = invitation.status
        if status == INVITATION_PENDING and invitation.expires_at <= now:
            status = INVITATION_EXPIRED
        return cls(invitation, organization_name, status)


@dataclass(frozen=True)
class InvitationDelivery:
    """An invitation email to send after the response; what ``on_invitation_sent``
    hooks receive. ``token`` exists nowhere else."""

    invitation_id: uuid.UUID
    organization_id: uuid.UUID
    email: str
    token: str
    url: str


@dataclass(frozen=True)
class InvitationEmail:
    """What the default email says besides the link."""

    delivery: InvitationDelivery
    organization_name: str
    inviter: str | None
    role: str
    expires_at: datetime


@dataclass(frozen=True)
class IssuedInvitation:
    view: InvitationView
    email: InvitationEmail


@dataclass(frozen=True)
class Accepted:
    view: InvitationView
    member: MemberView


def _status_filter(status: str, now: datetime) -> ColumnElement[bool]:
    if status == INVITATION_PENDING:
        return live_invitation(now)
    if status == INVITATION_EXPIRED:
        return and_(col(Invitation.status) == INVITATION_PENDING, col(Invitation.expires_at) <= now)
    return col(Invitation.status) == status


def _lifetime(ctx: AuthContext, days: int | None) -> timedelta:
    return timedelta(days=days if days is not None else ctx.settings.invitation_expire_days)


def _inviter_label(user: User) -> str:
    name = " ".join(part for part in (user.first_name, user.last_name) if part)
    return name or user.email


async def _organization_name(db: AsyncSession, org_id: uuid.UUID) -> str:
    name = await db.scalar(select(col(Organization.name)).where(col(Organization.id) == org_id))
    if name is None:
        raise org_not_found()
    return name


async def _in_organization(
    db: AsyncSession, org_id: uuid.UUID, invitation_id: uuid.UUID
) -> Invitation:
    invitation = await db.scalar(
        select(Invitation)
        .where(col(Invitation.id) == invitation_id, col(Invitation.organization_id) == org_id)
        .execution_options(populate_existing=True)
    )
    if invitation is None:
        raise invitation_not_found()
    return invitation


async def _require_room_for_invitation(
    db: AsyncSession, ctx: AuthContext, org_id: uuid.UUID, *, replacing: uuid.UUID | None
) -> None:
    """Pending and member limits for one more live invitation (``replacing`` not
    counted). Under the organization lock."""
    counted = select(func.count()).where(
        col(Invitation.organization_id) == org_id, live_invitation(utcnow())
    )
    if replacing is not None:
        counted = counted.where(col(Invitation.id) != replacing)
    if int(await db.scalar(counted) or 0) >= ctx.settings.org_max_pending_invitations:
        raise ConflictError(
            "The organization has too many pending invitations.",
            code=ErrorCode.INVITATION_LIMIT_REACHED,
        )
    await require_member_room(
        db,
        org_id,
        ctx.settings.org_max_members,
        invitations_take_seats=True,
        not_counting=replacing,
    )


def _issue(
    ctx: AuthContext, invitation: Invitation, inviter: User, org_name: str
) -> InvitationEmail:
    """Give ``invitation`` a new token (the caller stores the row and commits)."""
    token = new_opaque_token(INVITATION_TOKEN_PREFIX)
    invitation.token_hash = hash_token(token)
    delivery = InvitationDelivery(
        invitation_id=invitation.id,
        organization_id=invitation.organization_id,
        email=invitation.email,
        token=token,
        url=build_invitation_url(ctx.settings.frontend_url, token),
    )
    return InvitationEmail(
        delivery, org_name, _inviter_label(inviter), invitation.role, invitation.expires_at
    )


async def _inviting_grant(
    db: AsyncSession, ctx: AuthContext, actor: Actor, org_id: uuid.UUID, role: str
) -> None:
    """Lock the organization and check that the actor may invite with ``role``."""
    if not await lock_organization(db, org_id):
        raise org_not_found()
    grant = await acting_grant(db, actor, org_id)
    require_permission(grant, MANAGE)
    require_grantable(grant, role, await role_permissions(db, actor.catalog, org_id, role))


# --- organization side ---------------------------------------------------------------


async def create_invitation(
    db: AsyncSession,
    ctx: AuthContext,
    actor: Actor,
    inviter: User,
    org_id: uuid.UUID,
    *,
    email: str,
    role: str,
    expires_in_days: int | None,
) -> IssuedInvitation:
    """Invite ``email`` (normalised) with ``role``; a pending invitation of the same
    address is revoked in the same transaction. The answer is the same whether or not the
    address has an account."""
    await _inviting_grant(db, ctx, actor, org_id, role)
    await ctx.account_limits.invite(actor.principal_id)
    is_member = await db.scalar(
        select(func.count())
        .select_from(Membership)
        .join(User, col(User.id) == col(Membership.user_id))
        .where(col(Membership.organization_id) == org_id, col(User.email) == email)
    )
    if is_member:
        raise already_member()
    previous = await db.scalar(
        select(Invitation).where(
            col(Invitation.organization_id) == org_id,
            col(Invitation.email) == email,
            col(Invitation.status) == INVITATION_PENDING,
        )
    )
    await _require_room_for_invitation(
        db, ctx, org_id, replacing=previous.id if previous is not None else None
    )
    now = utcnow()
    if previous is not None:
        # A statement, not the unit of work: the new row's INSERT must come after it (one
        # pending invitation per address).
        await db.execute(
            update(Invitation)
            .where(col(Invitation.id) == previous.id)
            .values(status=INVITATION_REVOKED, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        await db.refresh(previous)
    invitation = Invitation(
        organization_id=org_id,
        email=email,
        role=role,
        status=INVITATION_PENDING,
        token_hash="",
        inviter_id=actor.user_id,
        created_at=now,
        updated_at=now,
        expires_at=now + _lifetime(ctx, expires_in_days),
    )
    org_name = await _organization_name(db, org_id)
    message = _issue(ctx, invitation, inviter, org_name)
    db.add(invitation)
    if previous is not None:
        record(
            db,
            "invitation.revoked",
            **actor.events(org_id),
            targets=[events.invitation(previous.id)],
            data=_payload(InvitationView.of(previous, org_name, now)),
            email=email,
            reason="replaced",
        )
    view = InvitationView.of(invitation, org_name, now)
    record(
        db,
        "invitation.created",
        **actor.events(org_id),
        targets=[events.invitation(invitation.id)],
        data=_payload(view),
        email=email,
        role=role,
    )
    await db.commit()
    return IssuedInvitation(view, message)


async def list_invitations(
    db: AsyncSession,
    actor: Actor,
    org_id: uuid.UUID,
    *,
    page: int,
    limit: int,
    status: str | None,
) -> tuple[list[InvitationView], int]:
    """One page of the organization's invitations, newest first, and the total."""
    require_permission(await acting_grant(db, actor, org_id), MANAGE)
    now = utcnow()
    conditions = [col(Invitation.organization_id) == org_id]
    if status is not None:
        conditions.append(_status_filter(status, now))
    total = await db.scalar(select(func.count()).select_from(Invitation).where(*conditions))
    rows = await db.execute(
        select(Invitation, col(Organization.name))
        .join(Organization, col(Organization.id) == col(Invitation.organization_id))
        .where(*conditions)
        .order_by(col(Invitation.created_at).desc(), col(Invitation.id))
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return [InvitationView.of(row, name, now) for row, name in rows.all()], int(total or 0)


async def resend_invitation(
    db: AsyncSession,
    ctx: AuthContext,
    actor: Actor,
    inviter: User,
    org_id: uuid.UUID,
    invitation_id: uuid.UUID,
    *,
    expires_in_days: int | None,
) -> IssuedInvitation:
    """A new token and email for a pending (or expired) invitation; the old token dies,
    ``expires_at`` is renewed and the caller becomes the inviter."""
    if not await lock_organization(db, org_id):
        raise org_not_found()
    grant = await acting_grant(db, actor, org_id)
    require_permission(grant, MANAGE)
    invitation = await _in_organization(db, org_id, invitation_id)
    if invitation.status != INVITATION_PENDING:
        raise invitation_not_pending()
    require_grantable(
        grant, invitation.role, await role_permissions(db, actor.catalog, org_id, invitation.role)
    )
    await ctx.account_limits.invite(actor.principal_id)
    now = utcnow()
    if invitation.expires_at <= now:  # an expired one coming back takes a seat again
        await _require_room_for_invitation(db, ctx, org_id, replacing=invitation.id)
    invitation.expires_at = now + _lifetime(ctx, expires_in_days)
    invitation.inviter_id = actor.user_id
    invitation.updated_at = now
    org_name = await _organization_name(db, org_id)
    message = _issue(ctx, invitation, inviter, org_name)
    view = InvitationView.of(invitation, org_name, now)
    record(
        db,
        "invitation.resent",
        **actor.events(org_id),
        targets=[events.invitation(invitation.id)],
        data=_payload(view),
        email=invitation.email,
        role=invitation.role,
    )
    await db.commit()
    return IssuedInvitation(view, message)


async def revoke_invitation(
    db: AsyncSession, actor: Actor, org_id: uuid.UUID, invitation_id: uuid.UUID
) -> InvitationView:
    """Withdraw a pending (or expired) invitation; a revoked one is left as it is."""
    if not await lock_organization(db, org_id):
        raise org_not_found()
    require_permission(await acting_grant(db, actor, org_id), MANAGE)
    invitation = await _in_organization(db, org_id, invitation_id)
    if invitation.status in (INVITATION_ACCEPTED, INVITATION_DECLINED):
        raise invitation_not_pending()
    now = utcnow()
    changed = invitation.status == INVITATION_PENDING
    if changed:
        invitation.status = INVITATION_REVOKED
        invitation.updated_at = now
    org_name = await _organization_name(db, org_id)
    view = InvitationView.of(invitation, org_name, now)
    if changed:
        record(
            db,
            "invitation.revoked",
            **actor.events(org_id),
            targets=[events.invitation(invitation.id)],
            data=_payload(view),
            email=invitation.email,
            role=invitation.role,
            reason="manual",
        )
    await db.commit()
    return view


# --- invitee side --------------------------------------------------------------------


async def list_my_invitations(
    db: AsyncSession, user: User, *, page: int, limit: int
) -> tuple[list[InvitationView], int]:
    """Live invitations addressed to the caller's (verified) email, newest first."""
    if user.email_verified_at is None:
        raise email_not_verified()
    now = utcnow()
    conditions = [col(Invitation.email) == user.email, live_invitation(now)]
    total = await db.scalar(select(func.count()).select_from(Invitation).where(*conditions))
    rows = await db.execute(
        select(Invitation, col(Organization.name))
        .join(Organization, col(Organization.id) == col(Invitation.organization_id))
        .where(*conditions)
        .order_by(col(Invitation.created_at).desc(), col(Invitation.id))
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return [InvitationView.of(row, name, now) for row, name in rows.all()], int(total or 0)


def _identifies(token: str | None, invitation_id: uuid.UUID | None) -> ColumnElement[bool]:
    """The row a ``{token}`` or ``{invitation_id}`` body names; a malformed token none."""
    if token is not None:
        token_hash = invitation_token_hash(token)
        if token_hash is None:
            return col(Invitation.id).is_(None)  # matches no row
        return col(Invitation.token_hash) == token_hash
    return col(Invitation.id) == invitation_id


async def _organization_of(
    db: AsyncSession, token: str | None, invitation_id: uuid.UUID | None
) -> uuid.UUID:
    """Which organization to lock; 400 for an unknown token or id. Ends its read-only
    transaction, so the lock is the next transaction's first statement."""
    org_id = await db.scalar(
        select(col(Invitation.organization_id)).where(_identifies(token, invitation_id))
    )
    await db.rollback()
    if org_id is None:
        raise invalid_invitation()
    return org_id


async def _inviter_still_may(
    db: AsyncSession, catalog: PermissionCatalog, invitation: Invitation
) -> bool:
    """Whether the inviter could send this invitation now: an active account holding
    ``invitations:manage`` in the organization (or a superuser) and allowed to grant the
    role, which must still exist."""
    if invitation.inviter_id is None:
        return False
    row = (
        await db.execute(
            select(
                col(User.is_active),
                col(User.is_superuser),
                col(Membership.role),
                col(OrganizationRole.permissions),
            )
            .select_from(User)
            .outerjoin(
                Membership,
                and_(
                    col(Membership.user_id) == col(User.id),
                    col(Membership.organization_id) == invitation.organization_id,
                ),
            )
            .outerjoin(
                OrganizationRole,
                and_(
                    col(OrganizationRole.organization_id) == col(Membership.organization_id),
                    col(OrganizationRole.key) == col(Membership.role),
                ),
            )
            .where(col(User.id) == invitation.inviter_id)
        )
    ).one_or_none()
    if row is None or not row.is_active:
        return False
    inviter = Actor(invitation.inviter_id, catalog, is_superuser=row.is_superuser)
    grant = inviter.grant(row.role, row.permissions)
    if grant is None or MANAGE not in grant.permissions:
        return False
    try:
        wanted = await role_permissions(db, catalog, invitation.organization_id, invitation.role)
        require_grantable(grant, invitation.role, wanted)
    except (PermissionDeniedError, UnprocessableError):  # beyond the inviter, or role gone
        return False
    return True


async def accept_invitation(
    db: AsyncSession,
    ctx: AuthContext,
    catalog: PermissionCatalog,
    user: User,
    *,
    token: str | None = None,
    invitation_id: uuid.UUID | None = None,
    client: ClientInfo | None = None,
) -> Accepted:
    """Join the organization with the invitation's role, under the organization lock,
    checking in the order of docs/API.md ("Accepting")."""
    org_id = await _organization_of(db, token, invitation_id)
    if not await lock_organization(db, org_id):
        raise invalid_invitation()  # the organization went away meanwhile
    now = utcnow()
    invitation = await db.scalar(
        select(Invitation)
        .where(_identifies(token, invitation_id), live_invitation(now))
        .execution_options(populate_existing=True)
    )
    if invitation is None:
        await db.rollback()
        raise invalid_invitation()
    if invitation.email != user.email:
        await db.rollback()
        raise email_mismatch()
    if token is None and user.email_verified_at is None:
        await db.rollback()
        raise email_not_verified()
    is_member = await db.scalar(
        select(func.count()).where(
            col(Membership.organization_id) == org_id, col(Membership.user_id) == user.id
        )
    )
    if is_member:
        await db.rollback()
        raise already_member()
    if not await _inviter_still_may(db, catalog, invitation):
        invitation.status = INVITATION_REVOKED
        invitation.updated_at = now
        record(
            db,
            "invitation.revoked",
            actor=SYSTEM,
            organization_id=org_id,
            client=client,
            targets=[events.invitation(invitation.id)],
            data=_payload(InvitationView.of(invitation, await _organization_name(db, org_id), now)),
            email=invitation.email,
            role=invitation.role,
            reason="inviter_lost_rights",
        )
        await db.commit()
        raise invalid_invitation()
    await require_member_room(db, org_id, ctx.settings.org_max_members)
    claimed = await db.execute(
        update(Invitation)
        .where(
            col(Invitation.id) == invitation.id,
            col(Invitation.status) == INVITATION_PENDING,
            col(Invitation.expires_at) > now,
        )
        .values(status=INVITATION_ACCEPTED, responded_at=now, updated_at=now)
        .returning(col(Invitation.id))
        .execution_options(synchronize_session=False)
    )
    if claimed.scalar_one_or_none() is None:
        await db.rollback()
        raise invalid_invitation()
    db.add(Membership(organization_id=org_id, user_id=user.id, role=invitation.role, joined_at=now))
    try:
        await db.flush()
    except IntegrityError:
        await db.rollback()
        raise already_member() from None
    # The token proved the mailbox.
    await db.execute(
        update(User)
        .where(col(User.id) == user.id, col(User.email_verified_at).is_(None))
        .values(email_verified_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    member = await member_view(db, catalog, org_id, user.id)
    org_name = await _organization_name(db, org_id)
    await db.refresh(invitation)
    joined: dict[str, Any] = {
        "actor": EventActor.user(user.id),
        "organization_id": org_id,
        "client": client,
    }
    view = InvitationView.of(invitation, org_name, now)
    record(
        db,
        "invitation.accepted",
        **joined,
        targets=[events.invitation(invitation.id)],
        data=_payload(view),
        email=invitation.email,
        role=invitation.role,
    )
    record(
        db,
        "member.added",
        **joined,
        targets=[events.user(user.id)],
        data={"member": as_data(member_read(member)), "source": "invitation"},
        role=invitation.role,
        source="invitation",
    )
    await db.commit()
    await ctx.hooks.after_member_added(org_id, user.id, invitation.role)
    return Accepted(view, member)


async def decline_invitation(
    db: AsyncSession,
    *,
    user: User | None,
    token: str | None = None,
    invitation_id: uuid.UUID | None = None,
    client: ClientInfo | None = None,
) -> InvitationView:
    """Decline a live invitation: by token (no account needed) or, signed in with the
    invited and verified address, by id. Anything else: 400 ``INVALID_INVITATION``."""
    now = utcnow()
    if token is None:
        assert user is not None  # the route answers 401 first
        row = await db.scalar(
            select(Invitation).where(_identifies(None, invitation_id), live_invitation(now))
        )
        if row is None:
            raise invalid_invitation()
        if row.email != user.email:
            raise email_mismatch()
        if user.email_verified_at is None:
            raise email_not_verified()
    claimed = await db.execute(
        update(Invitation)
        .where(_identifies(token, invitation_id), live_invitation(now))
        .values(status=INVITATION_DECLINED, responded_at=now, updated_at=now)
        .returning(col(Invitation.id))
        .execution_options(synchronize_session=False)
    )
    declined = claimed.scalar_one_or_none()
    if declined is None:
        await db.rollback()
        raise invalid_invitation()
    row = await db.scalar(
        select(Invitation)
        .where(col(Invitation.id) == declined)
        .execution_options(populate_existing=True)
    )
    assert row is not None
    org_name = await _organization_name(db, row.organization_id)
    view = InvitationView.of(row, org_name, now)
    record(
        db,
        "invitation.declined",
        actor=EventActor.user(user.id if user else None),
        organization_id=row.organization_id,
        client=client,
        targets=[events.invitation(row.id)],
        data=_payload(view),
        email=row.email,
        role=row.role,
    )
    await db.commit()
    return view


def _payload(view: InvitationView) -> dict[str, Any]:
    return {"invitation": as_data(invitation_read(view))}


async def deliver_invitation(ctx: AuthContext, message: InvitationEmail) -> None:
    """Hand an invitation to the host's hooks or, when none is registered, to the email
    backend. A failure is logged (without the token), never raised."""
    delivery = message.delivery
    await deliver(
        ctx,
        lambda: invitation_message(
            to=delivery.email,
            accept_url=delivery.url,
            organization_name=message.organization_name,
            inviter=message.inviter,
            role=message.role,
            expires_at=message.expires_at,
        ),
        hooks=ctx.hooks.invitation_sent(delivery),
        failure="invitation email failed",
        invitation_id=str(delivery.invitation_id),
    )
