"""Revision 0003 (custom organization roles) with rows present: upgrading keeps every
membership's role, downgrading turns custom roles into ``member`` and restores the
built-in-only check constraint, and the round trip loses nothing, on SQLite and PostgreSQL.

The rows are written with SQLAlchemy Core on tables declared here, not through the models,
which always describe the newest schema.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    MetaData,
    String,
    Table,
    Uuid,
    delete,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth import migrate
from orgauth.db import create_engine
from orgauth.migrations.options import VERSION_TABLE
from orgauth.models import ORGAUTH_TABLES, UTCDateTime
from orgauth.settings import OrgAuthSettings

BEFORE = "0002"
REVISION = "0003"
BUILT_IN_ROLES = ("owner", "admin", "member")
CUSTOM_ROLE = "billing-team"
LONGEST_ROLE = "r" * 32  # the widened column's length

NOW = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)

# The columns these tests write; the same in 0002 and 0003 (organization_roles: 0003 only).
metadata = MetaData()
users = Table(
    "users",
    metadata,
    Column("id", Uuid()),
    Column("email", String()),
    Column("hashed_password", String()),
    Column("is_active", Boolean()),
    Column("is_superuser", Boolean()),
    Column("created_at", UTCDateTime()),
    Column("updated_at", UTCDateTime()),
    Column("password_changed_at", UTCDateTime()),
)
organizations = Table(
    "organizations",
    metadata,
    Column("id", Uuid()),
    Column("name", String()),
    Column("slug", String()),
    Column("created_at", UTCDateTime()),
    Column("updated_at", UTCDateTime()),
)
members = Table(
    "organization_members",
    metadata,
    Column("organization_id", Uuid()),
    Column("user_id", Uuid()),
    Column("role", String()),
    Column("joined_at", UTCDateTime()),
)
sessions = Table(
    "user_sessions",
    metadata,
    Column("id", Uuid()),
    Column("user_id", Uuid()),
    Column("device_name", String()),
    Column("created_at", UTCDateTime()),
    Column("last_used_at", UTCDateTime()),
    Column("expires_at", UTCDateTime()),
)
roles = Table(
    "organization_roles",
    metadata,
    Column("id", Uuid()),
    Column("organization_id", Uuid()),
    Column("key", String()),
    Column("name", String()),
    Column("description", String()),
    Column("permissions", JSON()),
    Column("created_at", UTCDateTime()),
    Column("updated_at", UTCDateTime()),
)

Membership = tuple[uuid.UUID, uuid.UUID, str]  # (organization_id, user_id, role)


@dataclass
class Seed:
    """The rows written at 0002, as they should read back."""

    organization_id: uuid.UUID = field(default_factory=uuid.uuid4)
    user_ids: dict[str, uuid.UUID] = field(default_factory=dict)  # email -> id
    session_id: uuid.UUID = field(default_factory=uuid.uuid4)
    memberships: set[Membership] = field(default_factory=set)


def _engine(url: str) -> AsyncEngine:
    return create_engine(OrgAuthSettings(_env_file=None, database_url=url))


@pytest.fixture
async def engine(empty_database_url: str) -> AsyncIterator[AsyncEngine]:
    """The never-migrated database, at base before and after the test."""
    engine = _engine(empty_database_url)
    await migrate.downgrade(engine, "base")
    try:
        yield engine
    finally:
        await migrate.downgrade(engine, "base")
        await engine.dispose()


async def _table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))


def _user(email: str) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "email": email,
        "hashed_password": "not-a-real-hash",
        "is_active": True,
        "is_superuser": False,
        "created_at": NOW,
        "updated_at": NOW,
        "password_changed_at": NOW,
    }


async def _seed_at_0002(engine: AsyncEngine) -> Seed:
    """Users holding each built-in role in one organization, plus a session."""
    await migrate.upgrade(engine, BEFORE)
    seed = Seed()
    people = {f"{role}@example.com": role for role in BUILT_IN_ROLES}
    people["second-member@example.com"] = "member"
    people["future-custom@example.com"] = "member"  # given the custom role at 0003
    rows = [_user(email) for email in people]
    seed.user_ids = {row["email"]: row["id"] for row in rows}
    seed.memberships = {
        (seed.organization_id, seed.user_ids[email], role) for email, role in people.items()
    }
    async with engine.begin() as connection:
        await connection.execute(insert(users), rows)
        await connection.execute(
            insert(organizations).values(
                id=seed.organization_id,
                name="Acme",
                slug="acme",
                created_at=NOW,
                updated_at=NOW,
            )
        )
        await connection.execute(
            insert(members),
            [
                {"organization_id": org, "user_id": user, "role": role, "joined_at": NOW}
                for org, user, role in seed.memberships
            ],
        )
        await connection.execute(
            insert(sessions).values(
                id=seed.session_id,
                user_id=seed.user_ids["owner@example.com"],
                device_name="laptop",
                created_at=NOW,
                last_used_at=NOW,
                expires_at=NOW + timedelta(days=30),
            )
        )
    return seed


async def _add_custom_role(engine: AsyncEngine, seed: Seed) -> Membership:
    """At 0003: a custom role, and a membership holding it."""
    holder = seed.user_ids["future-custom@example.com"]
    async with engine.begin() as connection:
        await connection.execute(
            insert(roles).values(
                id=uuid.uuid4(),
                organization_id=seed.organization_id,
                key=CUSTOM_ROLE,
                name="Billing team",
                description="Sees and pays the invoices.",
                permissions=["billing:read", "billing:write", "members:read"],
                created_at=NOW,
                updated_at=NOW,
            )
        )
        await connection.execute(
            update(members)
            .where(members.c.organization_id == seed.organization_id)
            .where(members.c.user_id == holder)
            .values(role=CUSTOM_ROLE)
        )
    return (seed.organization_id, holder, CUSTOM_ROLE)


async def _memberships(engine: AsyncEngine) -> set[Membership]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(members.c.organization_id, members.c.user_id, members.c.role)
        )
        return {(org, user, role) for org, user, role in rows}


async def _assert_other_rows_kept(engine: AsyncEngine, seed: Seed) -> None:
    async with engine.connect() as connection:
        kept_users = dict((await connection.execute(select(users.c.email, users.c.id))).all())
        kept_orgs = (
            await connection.execute(select(organizations.c.id, organizations.c.slug))
        ).all()
        kept_sessions = (
            await connection.execute(
                select(sessions.c.id, sessions.c.user_id, sessions.c.expires_at)
            )
        ).all()
        joined = set((await connection.execute(select(members.c.joined_at))).scalars())
    assert kept_users == seed.user_ids
    assert [tuple(row) for row in kept_orgs] == [(seed.organization_id, "acme")]
    assert [tuple(row) for row in kept_sessions] == [
        (seed.session_id, seed.user_ids["owner@example.com"], NOW + timedelta(days=30))
    ]
    assert joined == {NOW}


def _members_table_shape(connection: Connection) -> dict[str, Any]:
    """organization_members' indexes and foreign keys, which SQLite's batch mode re-creates."""
    inspector = inspect(connection)
    return {
        "indexes": sorted(
            (index["name"], tuple(index["column_names"]), bool(index["unique"]))
            for index in inspector.get_indexes("organization_members")
        ),
        "foreign_keys": sorted(
            (
                fk["name"],
                tuple(fk["constrained_columns"]),
                fk["referred_table"],
                (fk.get("options") or {}).get("ondelete"),
            )
            for fk in inspector.get_foreign_keys("organization_members")
        ),
        "primary_key": inspector.get_pk_constraint("organization_members")["constrained_columns"],
    }


async def _members_shape(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as connection:
        return await connection.run_sync(_members_table_shape)


async def _insert_membership(engine: AsyncEngine, seed: Seed, role: str) -> None:
    """A new user joining the seeded organization with ``role``."""
    user = _user(f"joiner-{uuid.uuid4().hex[:8]}@example.com")
    async with engine.begin() as connection:
        await connection.execute(insert(users).values(**user))
        await connection.execute(
            insert(members).values(
                organization_id=seed.organization_id, user_id=user["id"], role=role, joined_at=NOW
            )
        )


# --- upgrade -------------------------------------------------------------------------------


async def test_upgrade_keeps_every_membership_and_its_role(engine: AsyncEngine) -> None:
    seed = await _seed_at_0002(engine)

    await migrate.upgrade(engine, REVISION)

    assert await migrate.current_revision(engine) == REVISION
    assert await _memberships(engine) == seed.memberships
    await _assert_other_rows_kept(engine, seed)
    await migrate.upgrade(engine)  # the models describe the head, not this revision
    assert await migrate.schema_drift(engine) == []


async def test_upgraded_database_stores_custom_roles(engine: AsyncEngine) -> None:
    seed = await _seed_at_0002(engine)
    await migrate.upgrade(engine, REVISION)

    custom = await _add_custom_role(engine, seed)
    await _insert_membership(engine, seed, LONGEST_ROLE)

    async with engine.connect() as connection:
        stored = (await connection.execute(select(roles.c.key, roles.c.permissions))).all()
    assert [tuple(row) for row in stored] == [
        (CUSTOM_ROLE, ["billing:read", "billing:write", "members:read"])
    ]
    memberships = await _memberships(engine)
    assert custom in memberships
    assert LONGEST_ROLE in {role for _, _, role in memberships}
    if engine.dialect.name == "postgresql":  # SQLite does not enforce VARCHAR lengths
        with pytest.raises(DBAPIError, match="too long"):
            await _insert_membership(engine, seed, LONGEST_ROLE + "r")


async def test_a_custom_role_key_is_unique_within_its_organization(engine: AsyncEngine) -> None:
    seed = await _seed_at_0002(engine)
    await migrate.upgrade(engine, REVISION)
    await _add_custom_role(engine, seed)

    with pytest.raises(IntegrityError):
        await _add_custom_role(engine, seed)


# --- downgrade -----------------------------------------------------------------------------


async def test_downgrade_turns_custom_roles_into_members(engine: AsyncEngine) -> None:
    seed = await _seed_at_0002(engine)
    shape_at_0002 = await _members_shape(engine)
    await migrate.upgrade(engine, REVISION)
    organization, holder, _ = await _add_custom_role(engine, seed)

    await migrate.downgrade(engine, BEFORE)

    assert await migrate.current_revision(engine) == BEFORE
    assert (organization, holder, "member") in await _memberships(engine)
    assert await _memberships(engine) == seed.memberships  # the holder was a member at 0002
    await _assert_other_rows_kept(engine, seed)
    assert "organization_roles" not in await _table_names(engine)
    assert await _members_shape(engine) == shape_at_0002


async def test_downgrade_restores_the_built_in_roles_check(engine: AsyncEngine) -> None:
    seed = await _seed_at_0002(engine)
    await migrate.upgrade(engine, REVISION)
    await _insert_membership(engine, seed, "bogus")  # allowed at 0003

    await migrate.downgrade(engine, BEFORE)

    assert {role for _, _, role in await _memberships(engine)} == set(BUILT_IN_ROLES)
    with pytest.raises(IntegrityError):
        await _insert_membership(engine, seed, "bogus")


# --- round trip ----------------------------------------------------------------------------


async def test_round_trip_keeps_the_data_and_ends_clean_at_base(engine: AsyncEngine) -> None:
    seed = await _seed_at_0002(engine)
    shape_at_0002 = await _members_shape(engine)
    await migrate.upgrade(engine, REVISION)
    shape_at_0003 = await _members_shape(engine)
    await _add_custom_role(engine, seed)
    await migrate.downgrade(engine, BEFORE)

    await migrate.upgrade(engine, REVISION)

    assert await migrate.current_revision(engine) == REVISION
    assert await _memberships(engine) == seed.memberships
    await _assert_other_rows_kept(engine, seed)
    assert await _members_shape(engine) == shape_at_0003 == shape_at_0002
    await migrate.upgrade(engine)  # the models describe the head, not this revision
    assert await migrate.schema_drift(engine) == []
    async with engine.connect() as connection:
        assert (await connection.execute(select(func.count()).select_from(roles))).scalar() == 0
    # The re-created foreign keys still cascade: a user's memberships go with the user.
    async with engine.begin() as connection:
        await connection.execute(delete(users).where(users.c.email == "admin@example.com"))
    assert len(await _memberships(engine)) == len(seed.memberships) - 1

    await migrate.downgrade(engine, "base")

    assert await _table_names(engine) & (ORGAUTH_TABLES | {VERSION_TABLE}) == set()
    assert await migrate.current_revision(engine) is None
