"""Revision 0006 (stored audit log) with rows present: upgrading adds `audit_events` and
changes no existing row; events have no foreign key to organizations (they outlive them);
downgrading drops the table and keeps users and organizations, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import JSON, Column, MetaData, String, Table, Uuid, insert, inspect
from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth import migrate
from orgauth.db import create_engine
from orgauth.migrations import HEAD_REVISION
from orgauth.models import UTCDateTime
from orgauth.settings import OrgAuthSettings

BEFORE = "0005"
REVISION = "0006"
NOW = datetime(2026, 12, 3, 18, 30, tzinfo=UTC)

organizations = Table(
    "organizations",
    MetaData(),
    Column("id", Uuid()),
    Column("name", String()),
    Column("slug", String()),
    Column("created_at", UTCDateTime()),
    Column("updated_at", UTCDateTime()),
)
events = Table(
    "audit_events",
    MetaData(),
    Column("id", Uuid()),
    Column("occurred_at", UTCDateTime()),
    Column("action", String()),
    Column("organization_id", Uuid()),
    Column("actor_type", String()),
    Column("targets", JSON()),
    Column("metadata", JSON()),
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


async def test_upgrade_downgrade_round_trip_keeps_organizations_and_events_outlive_them(
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
    assert "audit_events" in await _tables(engine)
    async with engine.begin() as connection:
        await connection.execute(
            insert(events).values(
                id=uuid.uuid4(),
                occurred_at=NOW,
                action="organization.deleted",
                organization_id=org_id,
                actor_type="system",
                targets=[],
                metadata={},
            )
        )
        await connection.execute(organizations.delete())
        kept = (await connection.execute(sa_select(events.c.organization_id))).scalars().all()
    assert kept == [org_id]

    await migrate.downgrade(engine, BEFORE)
    assert "audit_events" not in await _tables(engine)
    await migrate.downgrade(engine, "0002")
    await migrate.upgrade(engine)
    assert await migrate.current_revision(engine) == HEAD_REVISION
    assert await migrate.schema_drift(engine) == []
