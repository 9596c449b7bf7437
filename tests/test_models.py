"""The tables on the migrated database: uniqueness, cascades, constraints, timestamps and
column lengths (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import delete, func, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import SQLModel, col

from orgauth import models
from orgauth.db import create_sessionmaker
from orgauth.models import (
    ORGAUTH_TABLES,
    Membership,
    Organization,
    OrgRole,
    PasswordResetToken,
    RefreshToken,
    User,
    UserSession,
    utcnow,
)

HASH = "bcrypt-sha256$not-a-real-hash"


@pytest.fixture
async def session(db: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with create_sessionmaker(db)() as session:
        yield session


async def _add(session: AsyncSession, *rows: SQLModel) -> None:
    session.add_all(rows)
    await session.commit()


async def _count(session: AsyncSession, model: type[SQLModel]) -> int:
    return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


def _user(email: str = "ada@example.com") -> User:
    return User(email=email, hashed_password=HASH)


def _session_for(user: User, *, expires_in: timedelta = timedelta(days=1)) -> UserSession:
    return UserSession(user_id=user.id, expires_at=utcnow() + expires_in)


def _token_hash() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex


# --- uniqueness ---------------------------------------------------------------------------


async def test_two_users_cannot_share_an_email(session: AsyncSession) -> None:
    await _add(session, _user("same@example.com"))

    with pytest.raises(IntegrityError):
        await _add(session, _user("same@example.com"))


async def test_two_organizations_cannot_share_a_slug(session: AsyncSession) -> None:
    await _add(session, Organization(name="Acme", slug="acme"))

    with pytest.raises(IntegrityError):
        await _add(session, Organization(name="Acme 2", slug="acme"))


async def test_a_user_is_a_member_of_an_organization_at_most_once(
    session: AsyncSession,
) -> None:
    user, org = _user(), Organization(name="Acme", slug="acme")
    await _add(session, user, org)
    await _add(session, Membership(organization_id=org.id, user_id=user.id, role="owner"))

    with pytest.raises(IntegrityError):
        await _add(session, Membership(organization_id=org.id, user_id=user.id, role="member"))


async def test_refresh_token_hashes_are_unique(session: AsyncSession) -> None:
    user = _user()
    user_session = _session_for(user)
    await _add(session, user, user_session)
    digest = _token_hash()
    expires = utcnow() + timedelta(days=1)
    await _add(
        session, RefreshToken(session_id=user_session.id, token_hash=digest, expires_at=expires)
    )

    with pytest.raises(IntegrityError):
        await _add(
            session, RefreshToken(session_id=user_session.id, token_hash=digest, expires_at=expires)
        )


# --- constraints -------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "admin", "member"])
async def test_membership_accepts_the_three_roles(session: AsyncSession, role: str) -> None:
    user, org = _user(), Organization(name="Acme", slug="acme")
    await _add(session, user, org)
    await _add(session, Membership(organization_id=org.id, user_id=user.id, role=role))

    stored = (await session.execute(select(Membership.role))).scalar_one()
    assert OrgRole(stored) is OrgRole(role)


async def test_membership_role_holds_a_custom_role_key(session: AsyncSession) -> None:
    """Role keys are checked by the permission catalog, not a database constraint, so a
    custom role's key (up to 32 characters) is stored as is."""
    user, org = _user(), Organization(name="Acme", slug="acme")
    await _add(session, user, org)
    key = "billing-team_" + "x" * 19
    await _add(session, Membership(organization_id=org.id, user_id=user.id, role=key))

    assert (await session.execute(select(Membership.role))).scalar_one() == key


async def test_session_of_unknown_user_is_refused(session: AsyncSession) -> None:
    with pytest.raises(IntegrityError):
        await _add(session, UserSession(user_id=uuid.uuid4(), expires_at=utcnow()))


async def test_org_roles_rank_owner_over_admin_over_member() -> None:
    assert OrgRole.OWNER.rank > OrgRole.ADMIN.rank > OrgRole.MEMBER.rank


# --- cascades ------------------------------------------------------------------------------


async def test_deleting_a_user_deletes_everything_that_belongs_to_it(
    session: AsyncSession,
) -> None:
    user, other = _user("gone@example.com"), _user("stays@example.com")
    org = Organization(name="Acme", slug="acme")
    user_session, other_session = _session_for(user), _session_for(other)
    await _add(session, user, other, org, user_session, other_session)
    expires = utcnow() + timedelta(days=1)
    await _add(
        session,
        RefreshToken(session_id=user_session.id, token_hash=_token_hash(), expires_at=expires),
        RefreshToken(session_id=other_session.id, token_hash=_token_hash(), expires_at=expires),
        Membership(organization_id=org.id, user_id=user.id, role="owner"),
        Membership(organization_id=org.id, user_id=other.id, role="member"),
        PasswordResetToken(user_id=user.id, token_hash=_token_hash(), expires_at=expires),
        PasswordResetToken(user_id=other.id, token_hash=_token_hash(), expires_at=expires),
    )

    await session.execute(delete(User).where(col(User.id) == user.id))
    await session.commit()

    assert await _count(session, User) == 1
    assert await _count(session, UserSession) == 1
    assert await _count(session, RefreshToken) == 1
    assert await _count(session, Membership) == 1
    assert await _count(session, PasswordResetToken) == 1
    assert await _count(session, Organization) == 1  # organizations outlive their members
    remaining = (await session.execute(select(UserSession.user_id))).scalar_one()
    assert remaining == other.id


async def test_deleting_a_session_deletes_its_refresh_tokens(session: AsyncSession) -> None:
    user = _user()
    user_session = _session_for(user)
    await _add(session, user, user_session)
    await _add(
        session,
        RefreshToken(
            session_id=user_session.id,
            token_hash=_token_hash(),
            expires_at=utcnow() + timedelta(days=1),
        ),
    )

    await session.execute(delete(UserSession).where(col(UserSession.id) == user_session.id))
    await session.commit()

    assert await _count(session, RefreshToken) == 0
    assert await _count(session, User) == 1


async def test_deleting_an_organization_deletes_its_memberships(session: AsyncSession) -> None:
    user = _user()
    org, kept = Organization(name="Acme", slug="acme"), Organization(name="Kept", slug="kept")
    await _add(session, user, org, kept)
    await _add(
        session,
        Membership(organization_id=org.id, user_id=user.id, role="owner"),
        Membership(organization_id=kept.id, user_id=user.id, role="member"),
    )

    await session.execute(delete(Organization).where(col(Organization.id) == org.id))
    await session.commit()

    memberships = (await session.execute(select(Membership))).scalars().all()
    assert [m.organization_id for m in memberships] == [kept.id]
    assert await _count(session, User) == 1


# --- timestamps ---------------------------------------------------------------------------


async def test_timestamps_come_back_timezone_aware_in_utc(db: AsyncEngine) -> None:
    plus_two = timezone(timedelta(hours=2))
    written = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=plus_two)
    user = _user()
    user.created_at = written
    async with create_sessionmaker(db)() as session:
        await _add(session, user)

    async with create_sessionmaker(db)() as session:
        loaded = (await session.execute(select(User).where(col(User.id) == user.id))).scalar_one()

    for value in (loaded.created_at, loaded.updated_at, loaded.password_changed_at):
        assert value.tzinfo is not None
        assert value.utcoffset() == timedelta(0)
    assert loaded.created_at == written
    assert loaded.created_at.hour == 3  # 05:06 at +02:00 is 03:06 UTC
    assert loaded.last_login_at is None


async def test_timestamps_compare_correctly_in_queries(session: AsyncSession) -> None:
    user = _user()
    await _add(session, user)
    current = _session_for(user, expires_in=timedelta(hours=1))
    expired = _session_for(user, expires_in=timedelta(hours=-1))
    await _add(session, current, expired)

    # The same instant written in another offset must compare equal on both databases.
    now_elsewhere = utcnow().astimezone(timezone(timedelta(hours=-7)))
    result = await session.execute(
        select(UserSession.id).where(col(UserSession.expires_at) > now_elsewhere)
    )

    assert result.scalars().all() == [current.id]


async def test_naive_datetimes_are_refused(session: AsyncSession) -> None:
    user = _user()
    user.created_at = datetime(2026, 1, 1, 12, 0)  # naive on purpose

    with pytest.raises(StatementError, match="naive"):
        await _add(session, user)


def test_utcnow_is_timezone_aware() -> None:
    assert utcnow().tzinfo is UTC


# --- column lengths -----------------------------------------------------------------------

STRING_LENGTHS: list[tuple[str, str, int]] = [
    ("users", "email", models.EMAIL_MAX_LENGTH),
    ("users", "hashed_password", models.PASSWORD_HASH_MAX_LENGTH),
    ("users", "first_name", models.NAME_MAX_LENGTH),
    ("users", "last_name", models.NAME_MAX_LENGTH),
    ("organizations", "name", models.ORG_NAME_MAX_LENGTH),
    ("organizations", "slug", models.SLUG_MAX_LENGTH),
    ("organizations", "description", models.DESCRIPTION_MAX_LENGTH),
    ("organization_members", "role", models.ROLE_MAX_LENGTH),
    ("organization_roles", "key", models.ROLE_MAX_LENGTH),
    ("organization_roles", "name", models.ROLE_NAME_MAX_LENGTH),
    ("organization_roles", "description", models.ROLE_DESCRIPTION_MAX_LENGTH),
    ("user_sessions", "device_name", models.DEVICE_NAME_MAX_LENGTH),
    ("user_sessions", "device_type", models.DEVICE_TYPE_MAX_LENGTH),
    ("user_sessions", "browser", models.BROWSER_MAX_LENGTH),
    ("user_sessions", "os", models.OS_MAX_LENGTH),
    ("user_sessions", "ip_address", models.IP_MAX_LENGTH),
    ("user_sessions", "user_agent", models.USER_AGENT_MAX_LENGTH),
    ("user_sessions", "revoked_reason", models.REASON_MAX_LENGTH),
    ("refresh_tokens", "token_hash", models.TOKEN_HASH_LENGTH),
    ("password_reset_tokens", "token_hash", models.TOKEN_HASH_LENGTH),
    ("email_verification_tokens", "email", models.EMAIL_MAX_LENGTH),
    ("email_verification_tokens", "purpose", models.TOKEN_PURPOSE_MAX_LENGTH),
    ("email_verification_tokens", "token_hash", models.TOKEN_HASH_LENGTH),
    ("organization_invitations", "email", models.EMAIL_MAX_LENGTH),
    ("organization_invitations", "role", models.ROLE_MAX_LENGTH),
    ("organization_invitations", "status", models.STATUS_MAX_LENGTH),
    ("organization_invitations", "token_hash", models.TOKEN_HASH_LENGTH),
    ("audit_events", "action", models.ACTION_MAX_LENGTH),
    ("audit_events", "actor_type", models.ACTOR_TYPE_MAX_LENGTH),
    ("audit_events", "ip_address", models.IP_MAX_LENGTH),
    ("audit_events", "user_agent", models.USER_AGENT_MAX_LENGTH),
    ("organization_api_keys", "name", models.API_KEY_NAME_MAX_LENGTH),
    ("organization_api_keys", "start", models.API_KEY_START_LENGTH),
    ("organization_api_keys", "key_hash", models.TOKEN_HASH_LENGTH),
    ("webhook_endpoints", "url", models.WEBHOOK_URL_MAX_LENGTH),
    ("webhook_endpoints", "description", models.WEBHOOK_DESCRIPTION_MAX_LENGTH),
    ("webhook_endpoints", "secret_encrypted", models.ENCRYPTED_SECRET_MAX_LENGTH),
    ("webhook_endpoints", "previous_secret_encrypted", models.ENCRYPTED_SECRET_MAX_LENGTH),
    ("webhook_deliveries", "event_type", models.WEBHOOK_EVENT_TYPE_MAX_LENGTH),
    ("webhook_deliveries", "url", models.WEBHOOK_URL_MAX_LENGTH),
    ("webhook_deliveries", "secret_encrypted", models.ENCRYPTED_SECRET_MAX_LENGTH),
    ("webhook_deliveries", "status", models.STATUS_MAX_LENGTH),
    ("webhook_deliveries", "last_error", models.WEBHOOK_ERROR_MAX_LENGTH),
]


def test_every_string_column_has_a_length_constant() -> None:
    covered = {(table, column) for table, column, _ in STRING_LENGTHS}
    string_columns = {
        (table.name, column.name)
        for table in SQLModel.metadata.sorted_tables
        if table.name in ORGAUTH_TABLES
        for column in table.columns
        if getattr(column.type, "length", None) is not None
    }

    assert string_columns == covered


@pytest.mark.parametrize(("table", "column", "length"), STRING_LENGTHS)
def test_model_column_lengths_match_the_constants(table: str, column: str, length: int) -> None:
    assert SQLModel.metadata.tables[table].c[column].type.length == length  # type: ignore[attr-defined]


async def test_migrated_column_lengths_match_the_constants(db: AsyncEngine) -> None:
    def reflect(connection: Any) -> dict[tuple[str, str], int | None]:
        inspector = inspect(connection)
        return {
            (table, column["name"]): getattr(column["type"], "length", None)
            for table in ORGAUTH_TABLES
            for column in inspector.get_columns(table)
        }

    async with db.connect() as connection:
        reflected = await connection.run_sync(reflect)

    for table, column, length in STRING_LENGTHS:
        assert reflected[(table, column)] == length, (table, column)


async def test_normalised_emails_are_unique_regardless_of_case(
    session: AsyncSession,
) -> None:
    # The unique index is on the stored (normalised, lower-case) value; see validation.py.
    from orgauth.validation import normalize_email

    await _add(session, _user(normalize_email("Grace.Hopper@Example.COM")))

    with pytest.raises(IntegrityError):
        await _add(session, _user(normalize_email(" grace.hopper@example.com ")))
    await session.rollback()
    stored = (await session.execute(text("SELECT email FROM users"))).scalar_one()
    assert stored == "grace.hopper@example.com"
