"""Sessions: creation at login, refresh-token rotation, per-request checks and revocation.

Rotation is atomic on both databases: the presented token is claimed by a conditional
``UPDATE ... WHERE rotated_at IS NULL`` as the first statement of its transaction, so of
concurrent refreshes with one token exactly one wins, across processes too.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, and_, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import configure_mappers, make_transient_to_detached
from sqlalchemy.orm.attributes import manager_of_class
from sqlmodel import col

from orgauth.audit import audit
from orgauth.db import HotQuery
from orgauth.errors import AuthenticationError, ErrorCode
from orgauth.models import RefreshToken, User, UserSession, utcnow
from orgauth.security.devices import parse_user_agent
from orgauth.security.tokens import hash_token, new_refresh_token, refresh_token_hash
from orgauth.services.context import AuthContext, ClientInfo

# last_used_at is written at most this often per session, so reads do not become writes.
SESSION_TOUCH_INTERVAL = timedelta(seconds=60)
REASON_LOGOUT = "logout"
REASON_LOGOUT_ALL = "logout_all"
REASON_REVOKED = "revoked"
REASON_REFRESH_REUSE = "refresh_reuse"
REASON_PASSWORD_CHANGED = "password_changed"
REASON_PASSWORD_RESET = "password_reset"
REASON_DEACTIVATED = "deactivated"
REASON_ADMIN = "admin"


@dataclass(frozen=True)
class IssuedTokens:
    """Tokens handed to a client after login or refresh."""

    access_token: str
    refresh_token: str
    expires_in: int
    user: User
    session_id: uuid.UUID


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    user: User
    session_id: uuid.UUID


def _invalid_refresh() -> AuthenticationError:
    return AuthenticationError(
        "The refresh token is invalid or expired.", code=ErrorCode.INVALID_REFRESH_TOKEN
    )


def _rowcount(result: object) -> int:
    return int(result.rowcount) if isinstance(result, CursorResult) else 0


async def start_session(
    db: AsyncSession, ctx: AuthContext, *, user: User, client: ClientInfo
) -> IssuedTokens:
    """Create a session with device details and its first refresh token (caller commits).

    Plain INSERTs (no ORM unit of work): this runs on every login, on the core that also
    does the bcrypt work.
    """
    now = utcnow()
    device = parse_user_agent(client.user_agent)
    session_id = uuid.uuid4()
    expires_at = now + ctx.session_lifetime
    await db.execute(
        _INSERT_SESSION,
        {
            "id": session_id,
            "user_id": user.id,
            "device_name": device.device_name,
            "device_type": device.device_type,
            "browser": device.browser,
            "os": device.os,
            "ip_address": client.ip,
            "user_agent": device.user_agent,
            "created_at": now,
            "last_used_at": now,
            "expires_at": expires_at,
        },
    )
    refresh = await _add_refresh_token(db, ctx, session_id=session_id, session_expires=expires_at)
    access, expires_in = ctx.access_tokens.issue(user_id=user.id, session_id=session_id)
    return IssuedTokens(access, refresh, expires_in, user, session_id)


async def _add_refresh_token(
    db: AsyncSession, ctx: AuthContext, *, session_id: uuid.UUID, session_expires: datetime
) -> str:
    now = utcnow()
    token = new_refresh_token()
    await db.execute(
        _INSERT_REFRESH_TOKEN,
        {
            "id": uuid.uuid4(),
            "session_id": session_id,
            "token_hash": hash_token(token),
            "created_at": now,
            "expires_at": min(now + ctx.refresh_lifetime, session_expires),
        },
    )
    return token


async def rotate_refresh_token(db: AsyncSession, ctx: AuthContext, *, token: str) -> IssuedTokens:
    """Exchange a refresh token for new tokens; detect reuse of rotated ones (§4.3)."""
    token_hash = refresh_token_hash(token)
    if token_hash is None:
        raise _invalid_refresh()
    now = utcnow()
    claimed = await db.execute(
        update(RefreshToken)
        .where(
            col(RefreshToken.token_hash) == token_hash,
            col(RefreshToken.rotated_at).is_(None),
            col(RefreshToken.expires_at) > now,
        )
        .values(rotated_at=now)
        .returning(col(RefreshToken.session_id))
    )
    session_id = claimed.scalar_one_or_none()
    if session_id is None:
        await db.rollback()
        await _handle_unusable_token(db, ctx, token_hash=token_hash, now=now)
        raise _invalid_refresh()

    row = (
        await db.execute(
            select(User, UserSession)
            .join(UserSession, col(UserSession.user_id) == col(User.id))
            .where(
                col(UserSession.id) == session_id,
                col(UserSession.revoked_at).is_(None),
                col(UserSession.expires_at) > now,
                col(User.is_active).is_(True),
            )
        )
    ).one_or_none()
    if row is None:
        await db.rollback()
        raise _invalid_refresh()
    user, session = row
    refresh = await _add_refresh_token(
        db, ctx, session_id=session.id, session_expires=session.expires_at
    )
    session.last_used_at = now
    await db.commit()
    access, expires_in = ctx.access_tokens.issue(user_id=user.id, session_id=session.id)
    audit("token.refreshed", user_id=user.id, session_id=session.id)
    return IssuedTokens(access, refresh, expires_in, user, session.id)


async def _handle_unusable_token(
    db: AsyncSession, ctx: AuthContext, *, token_hash: str, now: datetime
) -> None:
    """A token that could not be claimed: unknown, expired, or already rotated (theft?)."""
    found = (
        await db.execute(
            select(col(RefreshToken.session_id), col(RefreshToken.rotated_at)).where(
                col(RefreshToken.token_hash) == token_hash
            )
        )
    ).one_or_none()
    await db.commit()
    if found is None or found.rotated_at is None:
        return  # unknown or merely expired
    if now - found.rotated_at <= ctx.reuse_grace:
        return  # a parallel tab refreshing at the same moment: refuse, don't punish
    revoked = await db.execute(
        update(UserSession)
        .where(col(UserSession.id) == found.session_id, col(UserSession.revoked_at).is_(None))
        .values(revoked_at=now, revoked_reason=REASON_REFRESH_REUSE)
        .returning(col(UserSession.user_id))
    )
    user_id = revoked.scalar_one_or_none()
    await db.commit()
    if user_id is not None:
        audit("token.reuse_detected", user_id=user_id, session_id=found.session_id)


_users = User.__table__  # type: ignore[attr-defined]
_sessions = UserSession.__table__  # type: ignore[attr-defined]
_refresh_tokens = RefreshToken.__table__  # type: ignore[attr-defined]
# Prebuilt: executed with a parameter dict, so SQLAlchemy's statement cache key is cheap.
_INSERT_SESSION = insert(_sessions)
_INSERT_REFRESH_TOKEN = insert(_refresh_tokens)
# Built once: per request only the parameters change (see orgauth.db.HotQuery).
_AUTHENTICATE = HotQuery(
    select(*_users.c, _sessions.c.last_used_at.label("session_last_used_at"))
    .select_from(_sessions.join(_users, _users.c.id == _sessions.c.user_id))
    .where(
        _sessions.c.id == bindparam("session_id"),
        _sessions.c.user_id == bindparam("user_id"),
        _sessions.c.revoked_at.is_(None),
        _sessions.c.expires_at > bindparam("now"),
        _users.c.is_active.is_(True),
    )
)
_TOUCH = HotQuery(
    update(_sessions)
    .where(_sessions.c.id == bindparam("session_id"))
    .values(last_used_at=bindparam("now"))
)
_USER_FIELDS = tuple(column.key for column in _users.c)


_USER_MANAGER = manager_of_class(User)


def _user_from_row(row: Mapping[str, Any]) -> User:
    """A detached User (``session.add`` of it updates, never inserts).

    Built the way the ORM builds loaded rows (a new instance with its attribute dict
    filled, not ``__init__``), which is several times cheaper: this runs on every request.
    """
    if not _USER_MANAGER.mapper.configured:
        # First use in this process, before any ORM query: the attribute machinery that
        # make_transient_to_detached relies on only exists once mappers are configured.
        configure_mappers()
    user: User = _USER_MANAGER.new_instance()
    object.__setattr__(user, "__pydantic_fields_set__", set(_USER_FIELDS))
    object.__setattr__(user, "__pydantic_extra__", None)
    object.__setattr__(user, "__pydantic_private__", None)
    user.__dict__.update({field: row[field] for field in _USER_FIELDS})
    make_transient_to_detached(user)
    return user


async def authenticate(
    engine: AsyncEngine, *, user_id: uuid.UUID, session_id: uuid.UUID
) -> Principal | None:
    """The per-request check: active unexpired session of an active user.

    One indexed query (primary key of ``user_sessions`` joined to ``users``) outside any
    transaction: on PostgreSQL a single round trip.
    """
    now = utcnow()
    params = {"session_id": session_id, "user_id": user_id, "now": now}
    row = await _AUTHENTICATE.fetch_one(engine, params)
    if row is None:
        return None
    if now - row["session_last_used_at"] >= SESSION_TOUCH_INTERVAL:
        await _TOUCH.execute(engine, params)
    return Principal(user=_user_from_row(row), session_id=session_id)


async def list_active_sessions(db: AsyncSession, *, user_id: uuid.UUID) -> list[UserSession]:
    """Active, unexpired sessions of a user, most recently used first."""
    result = await db.execute(
        select(UserSession)
        .where(
            col(UserSession.user_id) == user_id,
            col(UserSession.revoked_at).is_(None),
            col(UserSession.expires_at) > utcnow(),
        )
        .order_by(col(UserSession.last_used_at).desc(), col(UserSession.created_at).desc())
    )
    return list(result.scalars().all())


async def revoke_session(
    db: AsyncSession, *, user_id: uuid.UUID, session_id: uuid.UUID, reason: str
) -> bool:
    """Revoke one of the user's active sessions; False when there is no such session."""
    now = utcnow()
    result = await db.execute(
        update(UserSession)
        .where(
            col(UserSession.id) == session_id,
            col(UserSession.user_id) == user_id,
            col(UserSession.revoked_at).is_(None),
            col(UserSession.expires_at) > now,
        )
        .values(revoked_at=now, revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    await db.commit()
    return _rowcount(result) == 1


async def revoke_user_sessions(
    db: AsyncSession,
    *,
    user_id: uuid.UUID,
    reason: str,
    keep_session_id: uuid.UUID | None = None,
    commit: bool = True,
) -> int:
    """Revoke every active session of a user (optionally all but one); return how many."""
    now = utcnow()
    conditions = [col(UserSession.user_id) == user_id, col(UserSession.revoked_at).is_(None)]
    if keep_session_id is not None:
        conditions.append(col(UserSession.id) != keep_session_id)
    result = await db.execute(
        update(UserSession)
        .where(and_(*conditions), col(UserSession.expires_at) > now)
        .values(revoked_at=now, revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    if commit:
        await db.commit()
    return _rowcount(result)


async def count_active_sessions(db: AsyncSession, *, user_id: uuid.UUID) -> int:
    result = await db.execute(
        select(func.count())
        .select_from(UserSession)
        .where(
            col(UserSession.user_id) == user_id,
            col(UserSession.revoked_at).is_(None),
            col(UserSession.expires_at) > utcnow(),
        )
    )
    return int(result.scalar_one())
