"""Sessions and refresh tokens in the database: the statements and the shared predicates."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from orgauth.data.statements import FixedStatement, Statements, affected_rows
from orgauth.models import RefreshToken, User, UserSession

#: ``idle_since`` when there is no idle timeout: every session was used after it.
NEVER_IDLE = datetime(1970, 1, 1, tzinfo=UTC)


def session_is_active(
    now: datetime | ColumnElement[datetime],
    idle_since: datetime | ColumnElement[datetime] = NEVER_IDLE,
) -> ColumnElement[bool]:
    """The one definition of a usable session: not revoked, not expired at ``now``, and
    used after ``idle_since`` (``SESSION_IDLE_TIMEOUT_MINUTES`` ago; see
    :meth:`AuthContext.idle_since`)."""
    return and_(
        col(UserSession.revoked_at).is_(None),
        col(UserSession.expires_at) > now,
        col(UserSession.last_used_at) > idle_since,
    )


def session_is_over(now: datetime, idle_since: datetime = NEVER_IDLE) -> ColumnElement[bool]:
    """The negation of :func:`session_is_active`: revoked, expired or idle at ``now``."""
    return or_(
        col(UserSession.revoked_at).is_not(None),
        col(UserSession.expires_at) <= now,
        col(UserSession.last_used_at) <= idle_since,
    )


_users = User.__table__  # type: ignore[attr-defined]
_sessions = UserSession.__table__  # type: ignore[attr-defined]

# The per-request check: the primary key of user_sessions joined to users, one round trip.
_AUTHENTICATE = FixedStatement(
    select(*_users.c, _sessions.c.last_used_at.label("session_last_used_at"))
    .select_from(_sessions.join(_users, _users.c.id == _sessions.c.user_id))
    .where(
        _sessions.c.id == bindparam("session_id"),
        _sessions.c.user_id == bindparam("user_id"),
        session_is_active(bindparam("now"), bindparam("idle_since")),
        _users.c.is_active.is_(True),
    )
)
_TOUCH = FixedStatement(
    update(_sessions)
    .where(_sessions.c.id == bindparam("session_id"))
    .values(last_used_at=bindparam("now"))
)
# Prebuilt: executed with a parameter dict, so SQLAlchemy's statement cache key is cheap.
_INSERT_SESSION = insert(_sessions)
_INSERT_REFRESH_TOKEN = insert(RefreshToken.__table__)  # type: ignore[attr-defined]


async def find_active_session_user(
    statements: Statements,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    now: datetime,
    idle_since: datetime,
) -> Mapping[str, Any] | None:
    """Every ``users`` column plus ``session_last_used_at``, when the session is active and
    its user active; else None."""
    return await statements.first(
        _AUTHENTICATE,
        {"session_id": session_id, "user_id": user_id, "now": now, "idle_since": idle_since},
    )


async def touch_session(statements: Statements, *, session_id: uuid.UUID, now: datetime) -> None:
    """Record that the session was just used."""
    await statements.execute(_TOUCH, {"session_id": session_id, "now": now})


async def insert_session(db: AsyncSession, values: Mapping[str, Any]) -> None:
    """Add a ``user_sessions`` row (plain INSERT, no unit of work; the caller commits)."""
    await db.execute(_INSERT_SESSION, dict(values))


async def insert_refresh_token(db: AsyncSession, values: Mapping[str, Any]) -> None:
    """Add a ``refresh_tokens`` row (the caller commits)."""
    await db.execute(_INSERT_REFRESH_TOKEN, dict(values))


async def revoke_sessions(
    db: AsyncSession, *conditions: ColumnElement[bool], now: datetime, reason: str
) -> int:
    """Revoke every active session matching ``conditions``; how many (the caller commits)."""
    result = await db.execute(
        update(UserSession)
        .where(session_is_active(now), *conditions)
        .values(revoked_at=now, revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return affected_rows(result)


__all__ = [
    "find_active_session_user",
    "insert_refresh_token",
    "insert_session",
    "revoke_sessions",
    "session_is_active",
    "session_is_over",
    "touch_session",
]
