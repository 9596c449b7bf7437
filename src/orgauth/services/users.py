"""Creating, finding and promoting user accounts."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from orgauth.hooks import Hooks
from orgauth.models import User, utcnow
from orgauth.security.passwords import PasswordHasher, PasswordIdentity, check_password_policy
from orgauth.validation import normalize_email


@dataclass(frozen=True)
class SuperuserResult:
    user: User
    created: bool
    promoted: bool
    #: The existing account's address was unverified and now counts as verified.
    newly_verified: bool = False


@dataclass(frozen=True)
class FirstSuperuserResult:
    """What startup did about ``FIRST_SUPERUSER_EMAIL``: ``user`` is the new superuser when
    ``created``, else the account that already had the email (left exactly as it was)."""

    user: User
    created: bool


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    """Look a user up by (already normalised) email; one indexed query."""
    result = await session.execute(select(User).where(col(User.email) == email))
    return result.scalar_one_or_none()


async def create_first_superuser(
    session: AsyncSession,
    *,
    hasher: PasswordHasher,
    email: str,
    password: str,
    min_password_length: int,
    hooks: Hooks,
) -> FirstSuperuserResult:
    """Create the configured first superuser, only when no account has that email.

    An existing account is never changed: not promoted (the address may since have been
    freed by a rename and registered by someone else), not re-promoted after a demotion,
    and its password is kept. Safe when several processes start at once: one creates the
    account, the others find it.
    """
    normalized = normalize_email(email)
    existing = await get_user_by_email(session, normalized)
    if existing is not None:
        return FirstSuperuserResult(user=existing, created=False)
    user, created = await _create_superuser(
        session,
        hasher=hasher,
        email=normalized,
        password=password,
        min_password_length=min_password_length,
    )
    if created:
        await hooks.after_register(user)
    return FirstSuperuserResult(user=user, created=created)


async def ensure_superuser(
    session: AsyncSession,
    *,
    hasher: PasswordHasher,
    email: str,
    password: str | None,
    min_password_length: int,
    first_name: str | None = None,
    last_name: str | None = None,
) -> SuperuserResult:
    """Create a superuser, or promote the existing account with that email (the CLI's
    ``orgauth user create-superuser``; startup uses :func:`create_first_superuser`).

    Idempotent and safe when several processes run it at once. An existing account keeps
    its password; ``password`` is only checked and used when the account is created.
    """
    normalized = normalize_email(email)
    existing = await get_user_by_email(session, normalized)
    if existing is not None:
        return await _promote(session, existing)
    if password is None:
        raise ValueError("a password is required to create a new superuser")
    user, created = await _create_superuser(
        session,
        hasher=hasher,
        email=normalized,
        password=password,
        min_password_length=min_password_length,
        first_name=first_name,
        last_name=last_name,
    )
    if not created:
        return await _promote(session, user)
    return SuperuserResult(user=user, created=True, promoted=False)


async def _create_superuser(
    session: AsyncSession,
    *,
    hasher: PasswordHasher,
    email: str,
    password: str,
    min_password_length: int,
    first_name: str | None = None,
    last_name: str | None = None,
) -> tuple[User, bool]:
    """Insert a superuser with this (normalised) email; ``(user, True)``, or the account
    another process created at the same moment and ``False``."""
    clean = check_password_policy(
        password,
        min_length=min_password_length,
        identity=PasswordIdentity(email, first_name, last_name),
    )
    user = User(
        email=email,
        hashed_password=await hasher.hash(clean),
        first_name=first_name,
        last_name=last_name,
        is_superuser=True,
        email_verified_at=utcnow(),  # an operator created it: the address is vouched for
    )
    session.add(user)
    try:
        await session.commit()
    except IntegrityError:  # another process created it first
        await session.rollback()
        raced = await get_user_by_email(session, email)
        if raced is None:
            raise
        return raced, False
    return user, True


async def _promote(session: AsyncSession, user: User) -> SuperuserResult:
    """Make ``user`` a superuser with a verified address (the operator named it)."""
    if user.is_superuser and user.email_verified_at is not None:
        return SuperuserResult(user=user, created=False, promoted=False)
    promoted = not user.is_superuser
    newly_verified = user.email_verified_at is None
    now = utcnow()
    user.is_superuser = True
    if newly_verified:
        user.email_verified_at = now
    user.updated_at = now
    session.add(user)
    await session.commit()
    return SuperuserResult(
        user=user, created=False, promoted=promoted, newly_verified=newly_verified
    )
