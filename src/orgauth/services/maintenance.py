"""Pruning of expired and revoked sessions, spent tokens, old audit events and finished
webhook deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from orgauth.data.sessions import session_is_over
from orgauth.data.statements import affected_rows
from orgauth.models import (
    DELIVERY_PENDING,
    EmailVerificationToken,
    PasswordResetToken,
    RefreshToken,
    UserSession,
    WebhookDelivery,
    utcnow,
)
from orgauth.services.audit_log import prune_events
from orgauth.services.context import SessionPolicy


@dataclass(frozen=True)
class PruneResult:
    sessions: int
    refresh_tokens: int
    reset_tokens: int
    verification_tokens: int
    audit_events: int = 0
    webhook_deliveries: int = 0


async def prune_expired(
    session: AsyncSession,
    *,
    audit_retention_days: int = 0,
    webhook_retention_days: int = 0,
    policy: SessionPolicy = SessionPolicy(),
) -> PruneResult:
    """Delete what can no longer be used and, with a retention > 0, audit events and
    finished webhook deliveries older than that. Idempotent, so safe to run from several
    workers."""
    now = utcnow()
    # Idle sessions (SESSION_IDLE_TIMEOUT_MINUTES) are over too.
    sessions = await session.execute(
        delete(UserSession).where(session_is_over(now, policy.idle_since(now)))
    )
    tokens = await session.execute(delete(RefreshToken).where(col(RefreshToken.expires_at) < now))
    resets = await session.execute(
        delete(PasswordResetToken).where(
            or_(
                col(PasswordResetToken.expires_at) < now,
                col(PasswordResetToken.used_at).is_not(None),
            )
        )
    )
    # Verification and email-change links: spent (used or superseded) or expired.
    verifications = await session.execute(
        delete(EmailVerificationToken).where(
            or_(
                col(EmailVerificationToken.expires_at) < now,
                col(EmailVerificationToken.used_at).is_not(None),
            )
        )
    )
    audit_events = 0
    if audit_retention_days > 0:
        audit_events = await prune_events(session, older_than_days=audit_retention_days)
    deliveries = 0
    if webhook_retention_days > 0:
        # Finished ones only, by their last attempt: a pending delivery always stays.
        finished = await session.execute(
            delete(WebhookDelivery).where(
                col(WebhookDelivery.status) != DELIVERY_PENDING,
                col(WebhookDelivery.last_attempt_at) < now - timedelta(days=webhook_retention_days),
            )
        )
        deliveries = affected_rows(finished)
    await session.commit()
    return PruneResult(
        sessions=affected_rows(sessions),
        refresh_tokens=affected_rows(tokens),
        reset_tokens=affected_rows(resets),
        verification_tokens=affected_rows(verifications),
        audit_events=audit_events,
        webhook_deliveries=deliveries,
    )


# Any constant shared by every orgauth process: only one of them prunes at a time.
PRUNE_LOCK_ID = 0x6F72_6761_7570_72


async def prune_with_lock(
    session: AsyncSession,
    *,
    audit_retention_days: int = 0,
    webhook_retention_days: int = 0,
    policy: SessionPolicy = SessionPolicy(),
) -> PruneResult | None:
    """Prune unless another process is already doing it (PostgreSQL advisory lock).

    Returns None when another worker holds the lock. On SQLite, writes are serialised by
    the database and pruning is idempotent, so no lock is needed.
    """
    from sqlalchemy import text

    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        acquired = await session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": PRUNE_LOCK_ID}
        )
        if not acquired:
            await session.rollback()
            return None
    return await prune_expired(
        session,
        audit_retention_days=audit_retention_days,
        webhook_retention_days=webhook_retention_days,
        policy=policy,
    )
