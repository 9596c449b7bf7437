"""Pruning of expired and revoked sessions and spent tokens."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import CursorResult, delete, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from orgauth.models import PasswordResetToken, RefreshToken, UserSession, utcnow


@dataclass(frozen=True)
class PruneResult:
    sessions: int
    refresh_tokens: int
    reset_tokens: int


async def prune_expired(session: AsyncSession) -> PruneResult:
    """Delete what can no longer be used. Idempotent, so safe to run from several workers."""
    now = utcnow()
    sessions = await session.execute(
        delete(UserSession).where(
            or_(col(UserSession.expires_at) < now, col(UserSession.revoked_at).is_not(None))
        )
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
    await session.commit()
    return PruneResult(
        sessions=_count(sessions), refresh_tokens=_count(tokens), reset_tokens=_count(resets)
    )


def _count(result: object) -> int:
    return int(result.rowcount) if isinstance(result, CursorResult) else 0
