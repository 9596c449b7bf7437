"""Email verification: issuing ``oa_ev_`` links and redeeming them (docs/API.md).

Built like password reset (services/auth.py): tokens are stored only as their SHA-256
hash, a new token kills the user's earlier unused ones of the same purpose, a link is
redeemed by one conditional ``UPDATE … RETURNING`` claim (one winner under concurrency),
and every email goes out after the response, through the host's hook or the backend.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from orgauth.audit import audit
from orgauth.email import build_verify_url, verification_message
from orgauth.errors import BadRequestError, ErrorCode
from orgauth.models import PURPOSE_VERIFY, EmailVerificationToken, User, utcnow
from orgauth.security.ratelimit import RateLimitedError
from orgauth.security.tokens import hash_token, new_verification_token, verification_token_hash
from orgauth.services.context import AuthContext, ClientInfo
from orgauth.validation import InvalidEmailError, normalize_email

email_logger = logging.getLogger("orgauth.email")


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
        audit("email.verification_sent", user_id=user_id)
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
        audit("email.verification_throttled", ip=client.ip)
        return None
    user = (await db.execute(select(User).where(col(User.email) == normalized))).scalar()
    await db.commit()
    if user is None or not user.is_active or user.email_verified_at is not None:
        audit("email.verification_requested", user_id=user.id if user else None, ip=client.ip)
        return None
    delivery = await issue_verification(db, ctx, user_id=user.id, email=normalized)
    if delivery is None:  # verified, deactivated or renamed meanwhile
        return None
    audit("email.verification_requested", user_id=user.id, ip=client.ip)
    await deliver_verification(ctx, delivery)
    return delivery


async def deliver_verification(ctx: AuthContext, delivery: VerificationDelivery) -> None:
    """Hand a verification link to the host's hooks or, when none is registered, to the
    email backend. A failure is logged (without the token), never raised."""
    try:
        if not await ctx.hooks.email_verification_requested(delivery):
            message = verification_message(
                to=delivery.email,
                verify_url=delivery.url,
                expires_hours=ctx.settings.email_verify_expire_hours,
            )
            await ctx.email.send(message)
    except Exception as exc:
        email_logger.error(
            "verification email failed",
            extra={"user_id": str(delivery.user_id), "error": type(exc).__name__},
        )


async def confirm_verification(
    db: AsyncSession, ctx: AuthContext, *, token: str, client: ClientInfo
) -> User:
    """Redeem a ``verify`` token: the account's address is verified (a time already set is
    kept). Unknown, used, expired, superseded, of an inactive account or issued for an
    address the account no longer has: 400 ``INVALID_VERIFICATION_TOKEN``."""
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
            col(User.email) == col(EmailVerificationToken.email),
            col(User.is_active).is_(True),
        )
        .exists()
    )
    claimed = await db.execute(
        update(EmailVerificationToken)
        .where(
            col(EmailVerificationToken.token_hash) == token_hash,
            col(EmailVerificationToken.purpose) == PURPOSE_VERIFY,
            col(EmailVerificationToken.used_at).is_(None),
            col(EmailVerificationToken.expires_at) > now,
            account_matches,
        )
        .values(used_at=now)
        .returning(col(EmailVerificationToken.user_id))
        .execution_options(synchronize_session=False)
    )
    user_id = claimed.scalar_one_or_none()
    if user_id is None:
        await db.rollback()
        audit("email.verification_refused", ip=client.ip)
        raise _invalid_verification_token()
    # A time already set is kept (the address was verified before this link was used).
    await db.execute(
        update(User)
        .where(col(User.id) == user_id, col(User.email_verified_at).is_(None))
        .values(email_verified_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    user = await db.get(User, user_id, populate_existing=True)
    await db.commit()
    if user is None:  # cannot happen: the claim above saw the account
        raise _invalid_verification_token()
    audit("email.verified", user_id=user_id, ip=client.ip)
    return user
