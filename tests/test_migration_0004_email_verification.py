"""Revision 0004 (email verification) with rows present: upgrading marks existing
superusers verified at migration time and leaves every other account unverified,
downgrading drops the table and the column, and the round trip keeps every user, on
SQLite and PostgreSQL.

The rows are written with SQLAlchemy Core on tables declared here, not through the models,
which always describe the newest schema.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Boolean, Column, MetaData, String, Table, Uuid, delete, insert, inspect
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth import migrate
from orgauth.db import create_engine
from orgauth.models import UTCDateTime, utcnow
from orgauth.settings import OrgAuthSettings

BEFORE = "0003"
REVISION = "0004"
NOW = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)

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
verified = Table(  # the column 0004 adds, beside the ones above
    "users",
    MetaData(),
    Column("id", Uuid()),
    Column("email", String()),
    Column("email_verified_at", UTCDateTime()),
)
sessions = Table(
    "user_sessions",
    metadata,
    Column("id", Uuid()),
    Column("user_id", Uuid()),
    Column("created_at", UTCDateTime()),
    Column("last_used_at", UTCDateTime()),
    Column("expires_at", UTCDateTime()),
)
tokens = Table(
    "email_verification_tokens",
    MetaData(),
    Column("id", Uuid()),
    Column("user_id", Uuid()),
    Column("email", String()),
    Column("purpose", String()),
    Column("session_id", Uuid()),
    Column("token_hash", String()),
    Column("created_at", UTCDateTime()),
    Column("expires_at", UTCDateTime()),
)


def _engine(url: str) -> AsyncEngine:
    return create_engine(OrgAuthSettings(_env_file=None, database_url=url))


@pytest.fixture
async def engine(empty_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = _engine(empty_database_url)
    await migrate.downgrade(engine, "base")
    try:
        yield engine
    finally:
        await migrate.downgrade(engine, "base")
        await engine.dispose()


def _user(email: str, *, is_superuser: bool = False, is_active: bool = True) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "email": email,
        "hashed_password": "not-a-real-hash",
        "is_active": is_active,
        "is_superuser": is_superuser,
        "created_at": NOW,
        "updated_at": NOW,
        "password_changed_at": NOW,
    }


async def _seed_at_0003(engine: AsyncEngine) -> dict[str, uuid.UUID]:
    """A superuser, an inactive superuser, a plain user and an inactive one (email -> id)."""
    await migrate.upgrade(engine, BEFORE)
    rows = [
        _user("root@example.com", is_superuser=True),
        _user("old-root@example.com", is_superuser=True, is_active=False),
        _user("ada@example.com"),
        _user("gone@example.com", is_active=False),
    ]
    async with engine.begin() as connection:
        await connection.execute(insert(users), rows)
        await connection.execute(
            insert(sessions).values(
                id=uuid.uuid4(),
                user_id=rows[2]["id"],
                created_at=NOW,
                last_used_at=NOW,
                expires_at=NOW + timedelta(days=30),
            )
        )
    return {row["email"]: row["id"] for row in rows}


async def _verification(engine: AsyncEngine) -> dict[str, datetime | None]:
    async with engine.connect() as connection:
        rows = await connection.execute(sa_select(verified.c.email, verified.c.email_verified_at))
        return {row[0]: row[1] for row in rows}


async def _users(engine: AsyncEngine) -> dict[str, uuid.UUID]:
    async with engine.connect() as connection:
        return dict((await connection.execute(sa_select(users.c.email, users.c.id))).all())


async def _columns(engine: AsyncEngine, table: str) -> set[str]:
    async with engine.connect() as connection:
        return set(
            await connection.run_sync(
                lambda c: [column["name"] for column in inspect(c).get_columns(table)]
            )
        )


async def _table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))


async def test_upgrade_verifies_superusers_only(engine: AsyncEngine) -> None:
    seed = await _seed_at_0003(engine)
    before = utcnow() - timedelta(seconds=5)

    await migrate.upgrade(engine, REVISION)

    assert await migrate.current_revision(engine) == REVISION
    state = await _verification(engine)
    assert state["ada@example.com"] is None
    assert state["gone@example.com"] is None
    for root in ("root@example.com", "old-root@example.com"):
        at = state[root]
        assert at is not None
        assert before <= at <= utcnow() + timedelta(seconds=5)
    assert await _users(engine) == seed
    await migrate.upgrade(engine)  # the models describe the head, not this revision
    assert await migrate.schema_drift(engine) == []


async def test_upgraded_tokens_cascade_and_check_their_purpose(engine: AsyncEngine) -> None:
    seed = await _seed_at_0003(engine)
    await migrate.upgrade(engine, REVISION)
    ada = seed["ada@example.com"]
    row = {
        "user_id": ada,
        "email": "ada@example.com",
        "session_id": None,
        "created_at": NOW,
        "expires_at": NOW + timedelta(days=2),
    }
    async with engine.begin() as connection:
        await connection.execute(
            insert(tokens).values(id=uuid.uuid4(), purpose="verify", token_hash="a" * 64, **row)
        )
    with pytest.raises(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(
                insert(tokens).values(id=uuid.uuid4(), purpose="other", token_hash="b" * 64, **row)
            )
    with pytest.raises(IntegrityError):  # token_hash is unique
        async with engine.begin() as connection:
            await connection.execute(
                insert(tokens).values(id=uuid.uuid4(), purpose="change", token_hash="a" * 64, **row)
            )

    async with engine.begin() as connection:
        await connection.execute(delete(users).where(users.c.id == ada))
        left = (await connection.execute(sa_select(tokens.c.id))).all()
    assert left == []


async def test_downgrade_drops_the_table_and_the_column_and_keeps_users_and_sessions(
    engine: AsyncEngine,
) -> None:
    seed = await _seed_at_0003(engine)
    await migrate.upgrade(engine, REVISION)

    await migrate.downgrade(engine, BEFORE)

    assert await migrate.current_revision(engine) == BEFORE
    assert "email_verification_tokens" not in await _table_names(engine)
    assert "email_verified_at" not in await _columns(engine, "users")
    assert await _users(engine) == seed
    # Rows pointing at users survive (recreating `users` on SQLite would cascade them away).
    async with engine.connect() as connection:
        kept = (await connection.execute(sa_select(sessions.c.user_id))).scalars().all()
    assert kept == [seed["ada@example.com"]]


async def test_round_trip_keeps_users_and_maps_them_again(engine: AsyncEngine) -> None:
    seed = await _seed_at_0003(engine)
    await migrate.upgrade(engine, REVISION)
    # Verified at 0004 (e.g. a link was used) is forgotten by the downgrade...
    async with engine.begin() as connection:
        await connection.execute(
            verified.update()
            .where(verified.c.id == seed["ada@example.com"])
            .values(email_verified_at=NOW)
        )
    await migrate.downgrade(engine, BEFORE)

    await migrate.upgrade(engine, REVISION)

    # ...and the upgrade maps the accounts again: superusers verified, others not.
    state = await _verification(engine)
    assert state["ada@example.com"] is None
    assert state["root@example.com"] is not None
    assert await _users(engine) == seed
    await migrate.upgrade(engine)  # the models describe the head, not this revision
    assert await migrate.schema_drift(engine) == []
