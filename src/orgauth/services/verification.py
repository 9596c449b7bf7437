"""Email verification and email change: issuing ``oa_ev_`` links and redeeming them
(docs/API.md, docs/SECURITY.md).

Built like password reset (services/auth.py): tokens are stored only as their SHA-256
hash, a new token kills the user's earlier unused ones of the same purpose, a link is
redeemed by one conditional ``UPDATE … RETURNING`` claim (one winner under concurrency),
and every email goes out after the response, through the host's hook or the backend.

A ``verify`` token proves the account's current address; a ``change`` token proves a new
one, and redeeming it moves the account to that address (:func:`confirm_email_token`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from orgauth import events
from orgauth.email import (
    EmailMessage,
    build_confirm_email_url,
    build_verify_url,
    email_change_message,
    email_changed_message,
    verification_message,
)
from orgauth.errors import (
    BadRequestError,
    ConflictError,
    ErrorCode,
    UnprocessableError,
)
from orgauth.events import EventActor, log_line, record, record_alone
from orgauth.models import PURPOSE_CHANGE, PURPOSE_VERIFY, EmailVerificationToken, User, utcnow
from orgauth.security.ratelimit import RateLimitedError
from orgauth.security.tokens import hash_token, new_verification_token, verification_token_hash
from orgauth.services import sessions
from orgauth.services.auth import end_reset_tokens
from orgauth.services.context import AuthContext, ClientInfo
from orgauth.services.delivery import deliver
from orgauth.services.sessions import Principal
from orgauth.validation import InvalidEmailError, normalize_email


def _invalid_verification_token() -> BadRequestError:
    return BadRequestError(
        "The verification link is invalid or has expired.",
        code=ErrorCode.INVALID_VERIFICATION_TOKEN,
    )


@dataclass(frozen=True)
class VerificationDelivery:
    """A verification email to send after the response; what the
    ``on_email_verification_requested`` hook receives."""

    user_id: uuid.UUID
    email: str
    purpose: str
    token: str
    url: str


def _by(user_id: uuid.UUID, client: ClientInfo) -> dict[str, Any]:
    """Event fields of an action the account holder takes about their own account."""
    return {
        "actor": EventActor.user(user_id),
        "targets": [events.user(user_id)],
        "client": client,
    }


async def end_verification_tokens(
    db: AsyncSession, *, user_id: uuid.UUID, now: datetime, purpose: str | None = None
) -> None:
    """Make the user's outstanding verification links unusable (caller commits): those of
    ``purpose``, or every one when None (the account's address changed)."""
    conditions = [
        col(EmailVerificationToken.user_id) == user_id,
        col(EmailVerificationToken.used_at).is_(None),
    ]
    if purpose is not None:
        conditions.append(col(EmailVerificationToken.purpose) == purpose)
    await db.execute(
        update(EmailVerificationToken)
        .where(*conditions)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )


async def issue_verification(
    db: AsyncSession, ctx: AuthContext, *, user_id: uuid.UUID, email: str
) -> VerificationDelivery | None:
    """Store a new ``verify`` token (superseding older ones) while the account is active,
    unverified and still has ``email``; None otherwise.

    As for reset tokens, the first statement is a write (on SQLite it takes the database
    lock) and the account row is then share-locked on PostgreSQL, so an email change or a
    verification either committed before (no token) or waits for this one.
    """
    now = utcnow()
    await end_verification_tokens(db, user_id=user_id, now=now, purpose=PURPOSE_VERIFY)
    still_there = await db.scalar(
        select(col(User.id))
        .where(
            col(User.id) == user_id,
            col(User.email) == email,
            col(User.is_active).is_(True),
            col(User.email_verified_at).is_(None),
        )
        .with_for_update(read=True)
    )
    if still_there is None:
        await db.rollback()
        return None
    token = new_verification_token()
    db.add(
        EmailVerificationToken(
            user_id=user_id,
            email=email,
            purpose=PURPOSE_VERIFY,
            token_hash=hash_token(token),
            created_at=now,
            expires_at=now + ctx.verification_lifetime,
        )
    )
    await db.commit()
    return VerificationDelivery(
        user_id=user_id,
        email=email,
        purpose=PURPOSE_VERIFY,
        token=token,
        url=build_verify_url(ctx.settings.frontend_url, token),
    )


async def send_verification(
    db: AsyncSession, ctx: AuthContext, *, user_id: uuid.UUID, email: str
) -> VerificationDelivery | None:
    """Issue and deliver a verification link (registration); None when none was due."""
    delivery = await issue_verification(db, ctx, user_id=user_id, email=email)
    if delivery is not None:
        log_line("email.verification_sent", user_id=user_id)
        await deliver_verification(ctx, delivery)
    return delivery


async def request_verification(
    db: AsyncSession, ctx: AuthContext, *, email: str, client: ClientInfo
) -> VerificationDelivery | None:
    """``POST /auth/verify-email/request``: a new link for an active, unverified account
    with this email; None (nothing sent) for anything else.

    The API runs this after its answer has been sent, so every address costs the client
    the same time. At most ``RATE_LIMIT_VERIFY_EMAIL`` links per account (known or not,
    on top of the per-IP limit).
    """
    try:
        normalized = normalize_email(email)
    except InvalidEmailError:
        return None
    # Counted before the lookup: unknown addresses use up their allowance like known ones.
    try:
        await ctx.account_limits.verify_email(normalized)
    except RateLimitedError:
        await record_alone(db, "email.verification_throttled", client=client)
        return None
    user = (await db.execute(select(User).where(col(User.email) == normalized))).scalar()
    await db.commit()
    if user is None or not user.is_active or user.email_verified_at is not None:
        await record_alone(
            db,
            "email.verification_requested",
            targets=[events.user(user.id)] if user else [],
            client=client,
        )
        return None
    delivery = await issue_verification(db, ctx, user_id=user.id, email=normalized)
    if delivery is None:  # verified, deactivated or renamed meanwhile
        return None
    await record_alone(
        db, "email.verification_requested", targets=[events.user(user.id)], client=client
    )
    await deliver_verification(ctx, delivery)
    return delivery


async def deliver_verification(ctx: AuthContext, delivery: VerificationDelivery) -> None:
    """Hand a verification or email-change link to the host's hooks or, when none is
    registered, to the email backend. A failure is logged (without the token), never
    raised."""
    hours = ctx.settings.email_verify_expire_hours

    def message() -> EmailMessage:
        if delivery.purpose == PURPOSE_CHANGE:
            return email_change_message(
                to=delivery.email, confirm_url=delivery.url, expires_hours=hours
            )
        return verification_message(to=delivery.email, verify_url=delivery.url, expires_hours=hours)

    await deliver(
        ctx,
        message,
        hooks=ctx.hooks.email_verification_requested(delivery),
        failure="verification email failed",
        user_id=str(delivery.user_id),
        purpose=delivery.purpose,
    )


# --- email change ------------------------------------------------------------------------


async def check_email_change(
    db: AsyncSession,
    ctx: AuthContext,
    *,
    user: User,
    new_email: str,
    password: str | None,
    client: ClientInfo,
) -> None:
    """The part of ``POST /users/me/email`` answered before the response: the per-user
    limit (counted first, whatever follows), the password when the account has one (400
    ``INVALID_PASSWORD``, wrong or missing), and ``new_email`` (already normalised) being
    another address than the current one (422 ``EMAIL_UNCHANGED``).

    Nothing here looks at other accounts: whether the address is taken is decided after
    the response (:func:`send_email_change`), so the answer cannot tell.
    """
    try:
        await ctx.account_limits.change_email(user.id)
    except RateLimitedError:
        await record_alone(db, "email.change_throttled", **_by(user.id, client))
        raise
    if user.hashed_password and (
        password is None or not await ctx.passwords.verify(password, user.hashed_password)
    ):
        await record_alone(
            db, "email.change_refused", **_by(user.id, client), reason="bad_password"
        )
        raise BadRequestError("The password is incorrect.", code=ErrorCode.INVALID_PASSWORD)
    if new_email == user.email:
        raise UnprocessableError(
            "That is already your email address.", code=ErrorCode.EMAIL_UNCHANGED
        )
    await record_alone(db, "email.change_requested", **_by(user.id, client))


async def issue_email_change(
    db: AsyncSession,
    ctx: AuthContext,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID | None,
    new_email: str,
) -> VerificationDelivery | None:
    """Store a ``change`` token for ``new_email``, recording the requesting session; None
    (and no token) when another account has the address or the account is inactive.

    Either way the user's older change links die first: a newer request supersedes them.
    A taken address costs the same statements but the insert, and the caller answered
    long before (no enumeration). As in :func:`issue_verification`, the account row is
    share-locked on PostgreSQL after the first write.
    """
    now = utcnow()
    await end_verification_tokens(db, user_id=user_id, now=now, purpose=PURPOSE_CHANGE)
    taken = await db.scalar(
        select(col(User.id)).where(col(User.email) == new_email, col(User.id) != user_id)
    )
    active = await db.scalar(
        select(col(User.id))
        .where(col(User.id) == user_id, col(User.is_active).is_(True))
        .with_for_update(read=True)
    )
    if active is None or taken is not None:
        await db.commit()
        reason = "inactive" if active is None else "email_taken"
        log_line("email.change_not_sent", user_id=user_id, reason=reason)
        return None
    token = new_verification_token()
    db.add(
        EmailVerificationToken(
            user_id=user_id,
            email=new_email,
            purpose=PURPOSE_CHANGE,
            session_id=session_id,
            token_hash=hash_token(token),
            created_at=now,
            expires_at=now + ctx.verification_lifetime,
        )
    )
    await db.commit()
    return VerificationDelivery(
        user_id=user_id,
        email=new_email,
        purpose=PURPOSE_CHANGE,
        token=token,
        url=build_confirm_email_url(ctx.settings.frontend_url, token),
    )


async def send_email_change(
    db: AsyncSession,
    ctx: AuthContext,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID | None,
    new_email: str,
) -> VerificationDelivery | None:
    """Issue and deliver the ``Confirm your new email address`` link (after the response
    to ``POST /users/me/email``); None when none was due."""
    delivery = await issue_email_change(
        db, ctx, user_id=user_id, session_id=session_id, new_email=new_email
    )
    if delivery is not None:
        log_line("email.change_link_sent", user_id=user_id)
        await deliver_verification(ctx, delivery)
    return delivery


@dataclass(frozen=True)
class EmailChanged:
    """An applied email change: what the notice to the old address needs."""

    user_id: uuid.UUID
    old_email: str
    new_email: str


@dataclass(frozen=True)
class ConfirmedToken:
    """A redeemed ``oa_ev_`` token: the account as it now is, and the change it applied
    (None for a ``verify`` token)."""

    user: User
    change: EmailChanged | None


async def _apply_change(
    db: AsyncSession,
    *,
    user_id: uuid.UUID,
    new_email: str,
    now: datetime,
    keep_session_ids: Iterable[uuid.UUID | None],
    client: ClientInfo,
) -> EmailChanged:
    """Move the account to ``new_email`` inside the claim's transaction (caller commits):
    verified now; every unused verification, change and reset token dies; every session
    but ``keep_session_ids`` is revoked. Another account holding the address (the unique
    index decides, also against a concurrent change) rolls everything back, the claim
    included, and is 409 ``EMAIL_TAKEN``."""
    old_email = await db.scalar(
        select(col(User.email)).where(col(User.id) == user_id).with_for_update()
    )
    try:
        await db.execute(
            update(User)
            .where(col(User.id) == user_id)
            .values(email=new_email, email_verified_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    except IntegrityError:
        await db.rollback()
        await record_alone(db, "email.change_refused", **_by(user_id, client), reason="email_taken")
        raise ConflictError(
            "That email address now belongs to another account.", code=ErrorCode.EMAIL_TAKEN
        ) from None
    await end_verification_tokens(db, user_id=user_id, now=now)
    await end_reset_tokens(db, user_id=user_id, now=now)
    revoked = await sessions.revoke_user_sessions(
        db,
        user_ids=[user_id],
        reason=sessions.REASON_EMAIL_CHANGED,
        keep_session_ids=[kept for kept in keep_session_ids if kept is not None],
    )
    record(db, "email.changed", **_by(user_id, client), revoked_sessions=revoked)
    return EmailChanged(user_id=user_id, old_email=old_email or "", new_email=new_email)


async def notify_email_changed(ctx: AuthContext, change: EmailChanged) -> None:
    """Tell the old address about an applied change (after the response): no link, no
    token, through the email backend. A failure is logged, never raised."""
    if not change.old_email or change.old_email == change.new_email:
        return
    await deliver(
        ctx,
        lambda: email_changed_message(to=change.old_email, new_email=change.new_email),
        hooks=None,
        failure="email change notice failed",
        user_id=str(change.user_id),
    )


# --- redeeming links ---------------------------------------------------------------------


async def confirm_email_token(
    db: AsyncSession,
    ctx: AuthContext,
    *,
    token: str,
    client: ClientInfo,
    caller: Principal | None = None,
) -> ConfirmedToken:
    """Redeem an ``oa_ev_`` token, in one transaction.

    Without ``caller`` (``POST /auth/verify-email/confirm``) either purpose: a ``verify``
    token sets ``email_verified_at`` (a time already set is kept); a ``change`` token
    applies the change, keeping the session that requested it. With ``caller``
    (``POST /users/me/email/confirm``) only the caller's own ``change`` tokens, and the
    caller's session is kept as well.

    Unknown, used, expired, superseded, of an inactive account, (``verify``) issued for an
    address the account no longer has, or (with ``caller``) not a change token of the
    caller: 400 ``INVALID_VERIFICATION_TOKEN``, and the token is not spent. An address
    taken meanwhile: 409 ``EMAIL_TAKEN``, and the token is not spent either.
    """
    token_hash = verification_token_hash(token)
    if token_hash is None:
        raise _invalid_verification_token()
    now = utcnow()
    # One statement claims the token under every condition at once, so a concurrent
    # confirm, email change or deactivation cannot slip between a check and the claim.
    account_matches = (
        select(col(User.id))
        .where(
            col(User.id) == col(EmailVerificationToken.user_id),
            col(User.is_active).is_(True),
            or_(
                col(EmailVerificationToken.purpose) == PURPOSE_CHANGE,
                col(User.email) == col(EmailVerificationToken.email),
            ),
        )
        .exists()
    )
    conditions = [
        col(EmailVerificationToken.token_hash) == token_hash,
        col(EmailVerificationToken.used_at).is_(None),
        col(EmailVerificationToken.expires_at) > now,
        account_matches,
    ]
    if caller is not None:
        conditions += [
            col(EmailVerificationToken.purpose) == PURPOSE_CHANGE,
            col(EmailVerificationToken.user_id) == caller.user_id,
        ]
    claimed = (
        await db.execute(
            update(EmailVerificationToken)
            .where(*conditions)
            .values(used_at=now)
            .returning(
                col(EmailVerificationToken.user_id),
                col(EmailVerificationToken.purpose),
                col(EmailVerificationToken.email),
                col(EmailVerificationToken.session_id),
            )
            .execution_options(synchronize_session=False)
        )
    ).one_or_none()
    if claimed is None:
        await db.rollback()
        await record_alone(
            db,
            "email.verification_refused",
            actor=EventActor.user(caller.user_id if caller else None),
            client=client,
        )
        raise _invalid_verification_token()
    user_id, purpose, email, requesting_session = claimed
    change: EmailChanged | None = None
    if purpose == PURPOSE_CHANGE:
        change = await _apply_change(
            db,
            user_id=user_id,
            new_email=email,
            now=now,
            keep_session_ids=(requesting_session, caller.session_id if caller else None),
            client=client,
        )
    else:
        # A time already set is kept (the address was verified before this link was used).
        await db.execute(
            update(User)
            .where(col(User.id) == user_id, col(User.email_verified_at).is_(None))
            .values(email_verified_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    user = await db.get(User, user_id, populate_existing=True)
    if change is None:
        record(db, "email.verified", targets=[events.user(user_id)], client=client)
    await db.commit()
    if user is None:  # cannot happen: the claim above saw the account
        raise _invalid_verification_token()
    return ConfirmedToken(user=user, change=change)
