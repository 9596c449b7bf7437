"""Registration, login, logout, password change and reset (docs/API.md, docs/SECURITY.md)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from orgauth import events
from orgauth.data.statements import affected_rows
from orgauth.email import build_reset_url, password_reset_message
from orgauth.errors import (
    AuthenticationError,
    BadRequestError,
    ErrorCode,
    PermissionDeniedError,
    UnprocessableError,
)
from orgauth.events import EventActor, record, record_alone
from orgauth.models import PasswordResetToken, User, utcnow
from orgauth.security.passwords import PasswordIdentity, WeakPasswordError, check_password_policy
from orgauth.security.ratelimit import RateLimitedError
from orgauth.security.tokens import hash_token, new_reset_token, reset_token_hash
from orgauth.services import sessions
from orgauth.services.context import AuthContext, ClientInfo
from orgauth.services.delivery import deliver
from orgauth.services.sessions import IssuedTokens
from orgauth.validation import InvalidEmailError, normalize_email


def _invalid_credentials() -> AuthenticationError:
    return AuthenticationError("Incorrect email or password.", code=ErrorCode.INVALID_CREDENTIALS)


def _invalid_reset_token() -> BadRequestError:
    return BadRequestError(
        "The reset link is invalid or has expired.", code=ErrorCode.INVALID_RESET_TOKEN
    )


async def validate_new_password(
    ctx: AuthContext,
    password: str,
    *,
    email: str | None,
    first_name: str | None = None,
    last_name: str | None = None,
) -> str:
    """Apply the password policy (in a thread: zxcvbn can take ~0.1 s); refusal is 422."""
    try:
        return await asyncio.to_thread(
            check_password_policy,
            password,
            min_length=ctx.settings.password_min_length,
            identity=PasswordIdentity(email, first_name, last_name),
        )
    except WeakPasswordError as exc:
        raise UnprocessableError(str(exc), code=ErrorCode.WEAK_PASSWORD) from None


async def register(
    db: AsyncSession,
    ctx: AuthContext,
    *,
    email: str,
    password: str,
    first_name: str | None,
    last_name: str | None,
    client: ClientInfo,
) -> User:
    """Create an account. A taken email gets the same generic refusal as any other."""
    if not ctx.settings.allow_registration:
        raise PermissionDeniedError(
            "Registration is disabled.", code=ErrorCode.REGISTRATION_DISABLED
        )
    clean = await validate_new_password(
        ctx, password, email=email, first_name=first_name, last_name=last_name
    )
    # Hash before touching the database: a taken email costs the same time as a new one.
    hashed = await ctx.passwords.hash(clean)
    user = User(email=email, hashed_password=hashed, first_name=first_name, last_name=last_name)
    db.add(user)
    record(
        db,
        "user.registered",
        actor=EventActor.user(user.id),
        targets=[events.user(user.id)],
        client=client,
        method="password",
    )
    try:
        await db.commit()
    except IntegrityError:
        await db.rollback()
        await record_alone(db, "user.register_refused", client=client)
        raise BadRequestError(
            "Registration could not be completed.", code=ErrorCode.REGISTRATION_FAILED
        ) from None
    await ctx.hooks.after_register(user)
    return user


# Prebuilt (login runs on the core that also does bcrypt): only the parameters change.
_USER_BY_EMAIL = select(User).where(col(User.email) == bindparam("email"))
# A login claims the account row before it creates a session, and only while the password
# it verified is still the account's (see login()).
_CLAIM_FOR_LOGIN = update(User).where(
    col(User.id) == bindparam("user_id"),
    col(User.hashed_password) == bindparam("verified_hash"),
    col(User.is_active).is_(True),
)
_RECORD_LOGIN = _CLAIM_FOR_LOGIN.values(last_login_at=bindparam("now")).execution_options(
    synchronize_session=False
)
_RECORD_LOGIN_AND_REHASH = _CLAIM_FOR_LOGIN.values(
    last_login_at=bindparam("now"), hashed_password=bindparam("new_hash")
).execution_options(synchronize_session=False)


async def login(
    db: AsyncSession, ctx: AuthContext, *, email: str, password: str, client: ClientInfo
) -> IssuedTokens:
    """Check credentials and start a session.

    Unknown email, wrong password and inactive account are indistinguishable: same error,
    and one bcrypt verification of comparable cost on every path. With
    ``REQUIRE_VERIFIED_EMAIL``, a right password for an unverified address is then refused
    with 403 ``EMAIL_NOT_VERIFIED`` and no session. The per-account limit
    counts unknown emails like known ones.

    No session outlives the password it was created with: the session is inserted in a
    transaction that first updates the account row on the condition that its hash is still
    the one just verified. A password change or reset committed meanwhile makes that update
    match nothing (the login fails); one still in flight waits for the row, then revokes
    the new session with the others. A deleted or deactivated account fails the same way.
    """
    await ctx.account_limits.login(email)
    try:
        normalized: str | None = normalize_email(email)
    except InvalidEmailError:
        normalized = None
    user = None
    if normalized is not None:
        user = (await db.execute(_USER_BY_EMAIL, {"email": normalized})).scalar()
    await db.commit()  # end the read transaction before the slow hash

    if user is None or not user.is_active:
        await ctx.passwords.verify_dummy(password)
        await _login_failed(
            db, user.id if user else None, "inactive" if user else "unknown_email", client
        )
        raise _invalid_credentials()
    if not await ctx.passwords.verify(password, user.hashed_password):
        await _login_failed(db, user.id, "bad_password", client)
        raise _invalid_credentials()
    # Only a caller who knows the password learns that the address awaits verification.
    if ctx.settings.require_verified_email and user.email_verified_at is None:
        await _login_failed(db, user.id, "email_not_verified", client)
        raise PermissionDeniedError(
            "Verify your email address before signing in.", code=ErrorCode.EMAIL_NOT_VERIFIED
        )

    user_id = user.id  # the rollback below expires the loaded user
    params: dict[str, object] = {
        "user_id": user_id,
        "verified_hash": user.hashed_password,
        "now": utcnow(),
    }
    statement = _RECORD_LOGIN
    if ctx.passwords.needs_rehash(user.hashed_password):
        params["new_hash"] = await ctx.passwords.hash(password)
        statement = _RECORD_LOGIN_AND_REHASH
    if affected_rows(await db.execute(statement, params)) != 1:
        await db.rollback()
        await _login_failed(db, user_id, "account_changed", client)
        raise _invalid_credentials()
    issued = await sessions.start_session(db, ctx, user=user, client=client)
    record(
        db,
        "login.success",
        actor=EventActor.user(user_id),
        targets=[events.session(issued.session_id)],
        client=client,
        method="password",
        mfa=False,
    )
    await db.commit()
    await ctx.hooks.after_login(user)
    return issued


async def _login_failed(
    db: AsyncSession, user_id: uuid.UUID | None, reason: str, client: ClientInfo
) -> None:
    """A refused sign-in, recorded on its own: the account when known, never the email
    that was typed."""
    await record_alone(
        db,
        "login.failure",
        targets=[events.user(user_id)] if user_id else [],
        client=client,
        reason=reason,
    )


async def logout(db: AsyncSession, *, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
    await sessions.revoke_session(
        db, user_id=user_id, session_id=session_id, reason=sessions.REASON_LOGOUT, action="logout"
    )


async def logout_all(db: AsyncSession, *, user_id: uuid.UUID) -> int:
    revoked = await sessions.revoke_user_sessions(
        db, user_ids=[user_id], reason=sessions.REASON_LOGOUT_ALL
    )
    record(
        db,
        "logout_all",
        actor=EventActor.user(user_id),
        targets=[events.user(user_id)],
        revoked=revoked,
    )
    await db.commit()
    return revoked


async def change_password(
    db: AsyncSession,
    ctx: AuthContext,
    *,
    user: User,
    session_id: uuid.UUID,
    current_password: str,
    new_password: str,
) -> int:
    """Change the password; every other session is revoked, the current one stays."""
    if not await ctx.passwords.verify(current_password, user.hashed_password):
        await record_alone(
            db,
            "password.change_refused",
            actor=EventActor.user(user.id),
            targets=[events.user(user.id)],
        )
        raise BadRequestError("The current password is incorrect.", code=ErrorCode.INVALID_PASSWORD)
    clean = await validate_new_password(
        ctx, new_password, email=user.email, first_name=user.first_name, last_name=user.last_name
    )
    hashed = await ctx.passwords.hash(clean)
    await _store_password(db, user_id=user.id, hashed=hashed)
    revoked = await sessions.revoke_user_sessions(
        db,
        user_ids=[user.id],
        reason=sessions.REASON_PASSWORD_CHANGED,
        keep_session_ids=[session_id],
    )
    record(
        db,
        "password.changed",
        actor=EventActor.user(user.id),
        targets=[events.user(user.id)],
        revoked_sessions=revoked,
    )
    await db.commit()
    await ctx.hooks.after_password_change(user)
    return revoked


async def _store_password(db: AsyncSession, *, user_id: uuid.UUID, hashed: str) -> None:
    """Write a new hash and kill every outstanding reset token (caller commits)."""
    now = utcnow()
    await db.execute(
        update(User)
        .where(col(User.id) == user_id)
        .values(hashed_password=hashed, password_changed_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    await end_reset_tokens(db, user_id=user_id, now=now)


async def end_reset_tokens(db: AsyncSession, *, user_id: uuid.UUID, now: datetime) -> None:
    """Make every outstanding reset link of the user unusable (caller commits).

    Called when the password changes, when a newer link is issued and when the account's
    email address changes (a link sent to the old address must die with it).
    """
    await db.execute(
        update(PasswordResetToken)
        .where(
            col(PasswordResetToken.user_id) == user_id, col(PasswordResetToken.used_at).is_(None)
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class ResetDelivery:
    """A reset email to send after the response (so timing reveals nothing)."""

    user_id: uuid.UUID
    email: str
    token: str
    reset_url: str


async def request_password_reset(
    db: AsyncSession, ctx: AuthContext, *, email: str, client: ClientInfo
) -> ResetDelivery | None:
    """Issue a reset link for an active account and deliver it; None for anything else.

    The API runs this after its answer has been sent, so known and unknown emails cost
    the client the same time. At most ``RATE_LIMIT_PASSWORD_RESET`` links per account
    (known or not, on top of the per-IP limit): one mailbox cannot be flooded from many
    addresses.
    """
    try:
        normalized = normalize_email(email)
    except InvalidEmailError:
        return None
    user = (await db.execute(select(User).where(col(User.email) == normalized))).scalar()
    await db.commit()
    if user is None or not user.is_active:
        await record_alone(db, "password.reset_requested", client=client)
        return None
    try:
        await ctx.account_limits.password_reset(normalized)
    except RateLimitedError:
        await record_alone(
            db, "password.reset_throttled", targets=[events.user(user.id)], client=client
        )
        return None
    token = await _issue_reset_token(db, ctx, user_id=user.id, email=normalized, client=client)
    if token is None:  # the address or the account changed meanwhile
        return None
    delivery = ResetDelivery(
        user_id=user.id,
        email=normalized,
        token=token,
        reset_url=build_reset_url(ctx.settings.frontend_url, token),
    )
    await deliver_reset(ctx, delivery)
    return delivery


async def _issue_reset_token(
    db: AsyncSession,
    ctx: AuthContext,
    *,
    user_id: uuid.UUID,
    email: str,
    client: ClientInfo | None = None,
) -> str | None:
    """Store a new token (superseding older ones) while the account still has ``email``.

    The first statement is a write (on SQLite it takes the database lock); on PostgreSQL
    the account row is then share-locked, so an email change either committed before (no
    token) or waits until this one is stored (and then kills it).
    """
    now = utcnow()
    await end_reset_tokens(db, user_id=user_id, now=now)
    still_there = await db.scalar(
        select(col(User.id))
        .where(col(User.id) == user_id, col(User.email) == email, col(User.is_active).is_(True))
        .with_for_update(read=True)
    )
    if still_there is None:
        await db.rollback()
        return None
    token = new_reset_token()
    db.add(
        PasswordResetToken(
            user_id=user_id,
            token_hash=hash_token(token),
            created_at=now,
            expires_at=now + ctx.reset_lifetime,
        )
    )
    record(
        db,
        "password.reset_requested",
        targets=[events.user(user_id)],
        client=client,
    )
    await db.commit()
    return token


async def deliver_reset(ctx: AuthContext, delivery: ResetDelivery) -> None:
    """Hand a reset link to the host's hooks or, when none is registered, to the email
    backend. A failure is logged (without the token), never raised."""
    await deliver(
        ctx,
        lambda: password_reset_message(
            to=delivery.email,
            reset_url=delivery.reset_url,
            expires_minutes=ctx.settings.password_reset_expire_minutes,
        ),
        hooks=ctx.hooks.password_reset_requested(delivery),
        failure="password reset email failed",
        user_id=str(delivery.user_id),
    )


async def confirm_password_reset(
    db: AsyncSession, ctx: AuthContext, *, token: str, new_password: str, client: ClientInfo
) -> uuid.UUID:
    """Set a new password with a reset token; revoke every session of the user."""
    token_hash = reset_token_hash(token)
    if token_hash is None:
        raise _invalid_reset_token()
    now = utcnow()
    row = (
        await db.execute(
            select(PasswordResetToken, User)
            .join(User, col(User.id) == col(PasswordResetToken.user_id))
            .where(
                col(PasswordResetToken.token_hash) == token_hash,
                col(PasswordResetToken.used_at).is_(None),
                col(PasswordResetToken.expires_at) > now,
                col(User.is_active).is_(True),
            )
        )
    ).one_or_none()
    await db.commit()
    if row is None:
        raise _invalid_reset_token()
    reset, user = row
    if reset.created_at < user.password_changed_at:
        raise _invalid_reset_token()  # the password changed after this token was issued
    clean = await validate_new_password(
        ctx, new_password, email=user.email, first_name=user.first_name, last_name=user.last_name
    )
    hashed = await ctx.passwords.hash(clean)
    claimed = await db.execute(
        update(PasswordResetToken)
        .where(col(PasswordResetToken.id) == reset.id, col(PasswordResetToken.used_at).is_(None))
        .values(used_at=utcnow())
        .returning(col(PasswordResetToken.id))
    )
    if claimed.scalar_one_or_none() is None:  # used concurrently
        await db.rollback()
        raise _invalid_reset_token()
    await _store_password(db, user_id=user.id, hashed=hashed)
    revoked = await sessions.revoke_user_sessions(
        db, user_ids=[user.id], reason=sessions.REASON_PASSWORD_RESET
    )
    record(
        db,
        "password.reset_completed",
        targets=[events.user(user.id)],
        client=client,
        revoked_sessions=revoked,
    )
    await db.commit()
    return user.id


async def update_profile(db: AsyncSession, *, user: User, changes: dict[str, str | None]) -> User:
    """Apply name changes from PATCH /users/me."""
    if changes:
        for field, value in changes.items():
            setattr(user, field, value)
        user.updated_at = utcnow()
        db.add(user)
        record(
            db,
            "user.profile_updated",
            actor=EventActor.user(user.id),
            targets=[events.user(user.id)],
            fields=sorted(changes),
        )
        await db.commit()
    return user
