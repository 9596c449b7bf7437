"""Revision 0008 (organization API keys) with rows present: upgrading adds
`organization_api_keys` and changes no existing row; keys go with their organization and
outlive their creator; downgrading drops the table and keeps organizations and users, on
SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import JSON, Column, MetaData, String, Table, Uuid, insert, inspect
from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth import migrate
from orgauth.db import create_engine
from orgauth.migrations import HEAD_REVISION
from orgauth.models import UTCDateTime
from orgauth.settings import OrgAuthSettings

BEFORE = "0007"
REVISION = "0008"
NOW = datetime(2026, 12, 4, 19, 40, tzinfo=UTC)

_metadata = MetaData()
organizations = Table(
    "organizations",
    _metadata,
    Column("id", Uuid()),
    Column("name", String()),
    Column("slug", String()),
    Column("created_at", UTCDateTime()),
    Column("updated_at", UTCDateTime()),
)
keys = Table(
    "organization_api_keys",
    _metadata,
    Column("id", Uuid()),
    Column("organization_id", Uuid()),
    Column("name", String()),
    Column("start", String()),
    Column("key_hash", String()),
    Column("permissions", JSON()),
    Column("created_at", UTCDateTime()),
    Column("expires_at", UTCDateTime()),
)


@pytest.fixture
async def engine(empty_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(OrgAuthSettings(_env_file=None, database_url=empty_database_url))
    await migrate.downgrade(engine, "base")
    try:
        yield engine
    finally:
        await migrate.downgrade(engine, "base")
        await engine.dispose()


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))


def test_this_revision_is_the_head() -> None:
    assert HEAD_REVISION == REVISION


async def test_round_trip_with_rows_and_keys_go_with_their_organization(
    engine: AsyncEngine,
) -> None:
    await migrate.upgrade(engine, BEFORE)
    org_id = uuid.uuid4()
    async with engine.begin() as connection:
        await connection.execute(
            insert(organizations).values(
                id=org_id, name="Acme", slug="acme", created_at=NOW, updated_at=NOW
            )
        )

    await migrate.upgrade(engine, REVISION)
    assert "organization_api_keys" in await _tables(engine)
    assert await migrate.schema_drift(engine) == []
    async with engine.begin() as connection:
        await connection.execute(
            insert(keys).values(
                id=uuid.uuid4(),
                organization_id=org_id,
                name="CI",
                start="oa_live_abcd",
                key_hash="0" * 64,
                permissions=["members:read"],
                created_at=NOW,
                expires_at=NOW + timedelta(days=90),
            )
        )
        [kept] = (await connection.execute(sa_select(organizations.c.slug))).scalars().all()
        assert kept == "acme"
        await connection.execute(organizations.delete())
        assert (await connection.execute(sa_select(keys.c.id))).all() == []

    await migrate.downgrade(engine, BEFORE)
    assert "organization_api_keys" not in await _tables(engine)
    await migrate.downgrade(engine, "0002")
    await migrate.upgrade(engine)
    assert await migrate.current_revision(engine) == REVISION
    assert await migrate.schema_drift(engine) == []
