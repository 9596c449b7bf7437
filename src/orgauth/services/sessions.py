"""Sessions: creation at login, refresh-token rotation, per-request checks and revocation.

Rotation is atomic on both databases: the presented token is claimed by a conditional
``UPDATE ... WHERE rotated_at IS NULL`` as the first statement of its transaction, so of
concurrent refreshes with one token exactly one wins, across processes too.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from orgauth import events
from orgauth.data import sessions as session_data
from orgauth.data.statements import Statements
from orgauth.data.users import user_from_row
from orgauth.errors import AuthenticationError, ErrorCode, NotFoundError
from orgauth.events import EventActor, log_line, record
from orgauth.models import RefreshToken, User, UserSession, utcnow
from orgauth.security.devices import parse_user_agent
from orgauth.security.tokens import hash_token, new_refresh_token, refresh_token_hash
from orgauth.services.context import AuthContext, ClientInfo, SessionPolicy

# last_used_at is written at most this often per session, so reads do not become writes.
REASON_LOGOUT = "logout"
REASON_LOGOUT_ALL = "logout_all"
REASON_REVOKED = "revoked"
REASON_REFRESH_REUSE = "refresh_reuse"
REASON_PASSWORD_CHANGED = "password_changed"
REASON_PASSWORD_RESET = "password_reset"
REASON_DEACTIVATED = "deactivated"
REASON_ADMIN = "admin"
REASON_EVICTED = "evicted"
REASON_EMAIL_CHANGED = "email_changed"


@dataclass(frozen=True)
class IssuedTokens:
    """Tokens handed to a client after login or refresh."""

    access_token: str
    refresh_token: str
    expires_in: int
    user: User
    session_id: uuid.UUID


class Principal:
    """The authenticated caller of one request: the user's row and the session's id.

    ``user`` (a detached :class:`User`) is built on first use, so routes that only answer
    with the user's public fields never pay for an ORM object.
    """

    __slots__ = ("_user", "session_id", "user_fields")

    def __init__(self, user_fields: Mapping[str, Any], session_id: uuid.UUID) -> None:
        self.user_fields = user_fields
        self.session_id = session_id
        self._user: User | None = None

    @property
    def user_id(self) -> uuid.UUID:
        return self.user_fields["id"]  # type: ignore[no-any-return]

    @property
    def user(self) -> User:
        if self._user is None:
            self._user = user_from_row(self.user_fields)
        return self._user

    def __repr__(self) -> str:
        return f"Principal(user_id={self.user_id}, session_id={self.session_id})"


def _invalid_refresh() -> AuthenticationError:
    return AuthenticationError(
        "The refresh token is invalid or expired.", code=ErrorCode.INVALID_REFRESH_TOKEN
    )


async def start_session(
    db: AsyncSession, ctx: AuthContext, *, user: User, client: ClientInfo
) -> IssuedTokens:
    """Create a session with device details and its first refresh token (caller commits).

    Plain INSERTs (no ORM unit of work): this runs on every login, on the core that also
    does the bcrypt work.
    """
    now = utcnow()
    if ctx.session_policy.max_sessions:
        await _make_room(db, ctx.session_policy, user_id=user.id, now=now, client=client)
    device = parse_user_agent(client.user_agent)
    session_id = uuid.uuid4()
    expires_at = now + ctx.session_lifetime
    await session_data.insert_session(
        db,
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


async def _make_room(
    db: AsyncSession,
    policy: SessionPolicy,
    *,
    user_id: uuid.UUID,
    now: datetime,
    client: ClientInfo,
) -> None:
    """Revoke the user's least recently used active sessions until a new one fits in
    ``MAX_SESSIONS_PER_USER``. The caller holds the user's row lock (a sign-in updates the
    row first), so concurrent sign-ins, on any worker, take turns and never exceed it."""
    active = (
        await db.execute(
            select(col(UserSession.id))
            .where(
                col(UserSession.user_id) == user_id,
                session_data.session_is_active(now, policy.idle_since(now)),
            )
            .order_by(col(UserSession.last_used_at).desc(), col(UserSession.created_at).desc())
        )
    ).scalars()
    evicted = list(active)[policy.max_sessions - 1 :]
    if not evicted:
        return
    await session_data.revoke_sessions(
        db, col(UserSession.id).in_(evicted), now=now, reason=REASON_EVICTED
    )
    for session_id in evicted:
        record(
            db,
            "session.evicted",
            actor=EventActor.user(user_id),
            targets=[events.session(session_id)],
            client=client,
        )


async def _add_refresh_token(
    db: AsyncSession, ctx: AuthContext, *, session_id: uuid.UUID, session_expires: datetime
) -> str:
    now = utcnow()
    token = new_refresh_token()
    await session_data.insert_refresh_token(
        db,
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
    """Exchange a refresh token for new tokens; detect reuse of rotated ones (docs/SECURITY.md)."""
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
                session_data.session_is_active(now, ctx.session_policy.idle_since(now)),
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
    log_line("token.refreshed", user_id=user.id, session_id=session.id)
    return IssuedTokens(access, refresh, expires_in, user, session.id)


async def _handle_unusable_token(
    db: AsyncSession, ctx: AuthContext, *, token_hash: str, now: datetime
) -> None:
    """A token that could not be claimed: unknown, expired, or already rotated (theft?)."""
    found = (
        await db.execute(
            select(
                col(RefreshToken.session_id), col(RefreshToken.rotated_at), col(UserSession.user_id)
            )
            .join(UserSession, col(UserSession.id) == col(RefreshToken.session_id))
            .where(col(RefreshToken.token_hash) == token_hash)
        )
    ).one_or_none()
    await db.commit()
    if found is None or found.rotated_at is None:
        return  # unknown or merely expired
    if now - found.rotated_at <= ctx.reuse_grace:
        return  # a parallel tab refreshing at the same moment: refuse, don't punish
    revoked = await session_data.revoke_sessions(
        db,
        col(UserSession.id) == found.session_id,
        now=now,
        reason=REASON_REFRESH_REUSE,
    )
    if revoked:
        record(
            db,
            "token.reuse_detected",
            actor=EventActor.user(found.user_id),
            targets=[events.session(found.session_id)],
        )
    await db.commit()


async def authenticate(
    statements: Statements,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    policy: SessionPolicy = SessionPolicy(),
) -> Principal | None:
    """The per-request check: an active, unexpired, not idle session of an active user.

    One indexed query (primary key of ``user_sessions`` joined to ``users``) outside any
    transaction: a single round trip. ``last_used_at`` is written at most every
    ``policy.touch_interval``.
    """
    now = utcnow()
    row = await session_data.find_active_session_user(
        statements,
        user_id=user_id,
        session_id=session_id,
        now=now,
        idle_since=policy.idle_since(now),
    )
    if row is None:
        return None
    if now - row["session_last_used_at"] >= policy.touch_interval:
        await session_data.touch_session(statements, session_id=session_id, now=now)
    return Principal(row, session_id)


async def list_active_sessions(
    db: AsyncSession,
    *,
    user_id: uuid.UUID,
    current_session_id: uuid.UUID,
    policy: SessionPolicy = SessionPolicy(),
) -> Sequence[Row[*tuple[Any, ...]]]:
    """Active, unexpired sessions of a user, most recently used first; each row has every
    ``user_sessions`` column and ``is_current`` (the session of ``current_session_id``)."""
    now = utcnow()
    result = await db.execute(
        select(
            *UserSession.__table__.columns,  # type: ignore[attr-defined]
            (col(UserSession.id) == current_session_id).label("is_current"),
        )
        .where(
            col(UserSession.user_id) == user_id,
            session_data.session_is_active(now, policy.idle_since(now)),
        )
        .order_by(col(UserSession.last_used_at).desc(), col(UserSession.created_at).desc())
    )
    return result.all()


async def revoke_session(
    db: AsyncSession,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    reason: str,
    action: str,
    client: ClientInfo | None = None,
) -> bool:
    """Revoke one of the user's active sessions, recording ``action`` with it; False
    (nothing recorded) when there is no such session."""
    revoked = await session_data.revoke_sessions(
        db,
        col(UserSession.id) == session_id,
        col(UserSession.user_id) == user_id,
        now=utcnow(),
        reason=reason,
    )
    if revoked == 1:
        record(
            db,
            action,
            actor=EventActor.user(user_id),
            targets=[events.session(session_id)],
            client=client,
        )
    await db.commit()
    return revoked == 1


async def revoke_user_sessions(
    db: AsyncSession,
    *,
    user_ids: list[uuid.UUID],
    reason: str,
    keep_session_ids: Collection[uuid.UUID] = (),
) -> int:
    """Revoke every active session of some users (optionally all but a few); how many.

    The caller commits, so the revocation lands with the change that caused it.
    """
    conditions: list[ColumnElement[bool]] = [col(UserSession.user_id).in_(user_ids)]
    if keep_session_ids:
        conditions.append(col(UserSession.id).not_in(list(keep_session_ids)))
    return await session_data.revoke_sessions(db, *conditions, now=utcnow(), reason=reason)


async def revoke_own_session(
    db: AsyncSession, *, user_id: uuid.UUID, session_id: uuid.UUID
) -> None:
    """A user revokes one of their own sessions; anything else is the same 404."""
    revoked = await revoke_session(
        db,
        user_id=user_id,
        session_id=session_id,
        reason=REASON_REVOKED,
        action="session.revoked",
    )
    if not revoked:
        raise NotFoundError("Session not found.", code=ErrorCode.SESSION_NOT_FOUND)
