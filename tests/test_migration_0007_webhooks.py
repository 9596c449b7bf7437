"""Revision 0007 (signed webhooks) with rows present: upgrading adds `webhook_endpoints`
and `webhook_deliveries` and changes no existing row; endpoints go with their
organization while deliveries stay (their secret snapshot is sealed for the endpoint id);
downgrading drops both tables and keeps organizations, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    insert,
    inspect,
)
from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth import migrate
from orgauth.db import create_engine
from orgauth.migrations import HEAD_REVISION
from orgauth.models import UTCDateTime
from orgauth.settings import OrgAuthSettings

BEFORE = "0006"
REVISION = "0007"
NOW = datetime(2026, 12, 4, 19, 0, tzinfo=UTC)

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
endpoints = Table(
    "webhook_endpoints",
    _metadata,
    Column("id", Uuid()),
    Column("organization_id", Uuid()),
    Column("url", String()),
    Column("events", JSON()),
    Column("enabled", Boolean()),
    Column("secret_encrypted", String()),
    Column("created_at", UTCDateTime()),
    Column("updated_at", UTCDateTime()),
)
deliveries = Table(
    "webhook_deliveries",
    _metadata,
    Column("id", Uuid()),
    Column("endpoint_id", Uuid()),
    Column("organization_id", Uuid()),
    Column("event_id", Uuid()),
    Column("event_type", String()),
    Column("payload", Text()),
    Column("url", String()),
    Column("secret_encrypted", String()),
    Column("status", String()),
    Column("attempts", Integer()),
    Column("created_at", UTCDateTime()),
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


async def test_round_trip_with_rows_keeps_organizations_and_deliveries_outlive_endpoints(
    engine: AsyncEngine,
) -> None:
    await migrate.upgrade(engine, BEFORE)
    org_id, endpoint_id = uuid.uuid4(), uuid.uuid4()
    async with engine.begin() as connection:
        await connection.execute(
            insert(organizations).values(
                id=org_id, name="Acme", slug="acme", created_at=NOW, updated_at=NOW
            )
        )

    await migrate.upgrade(engine, REVISION)
    assert {"webhook_endpoints", "webhook_deliveries"} <= await _tables(engine)
    async with engine.begin() as connection:
        [kept] = (await connection.execute(sa_select(organizations.c.slug))).scalars().all()
        assert kept == "acme"
        await connection.execute(
            insert(endpoints).values(
                id=endpoint_id,
                organization_id=org_id,
                url="https://hooks.example.com/",
                events=["*"],
                enabled=True,
                secret_encrypted="v1.sealed",
                created_at=NOW,
                updated_at=NOW,
            )
        )
        await connection.execute(
            insert(deliveries).values(
                id=uuid.uuid4(),
                endpoint_id=endpoint_id,
                organization_id=org_id,
                event_id=uuid.uuid4(),
                event_type="organization.deleted",
                payload="{}",
                url="https://hooks.example.com/",
                secret_encrypted="v1.sealed",
                status="pending",
                attempts=0,
                created_at=NOW,
            )
        )
        await connection.execute(organizations.delete())
        assert (await connection.execute(sa_select(endpoints.c.id))).all() == []
        left = (await connection.execute(sa_select(deliveries.c.endpoint_id))).scalars().all()
    assert left == [endpoint_id]

    await migrate.downgrade(engine, BEFORE)
    tables = await _tables(engine)
    assert "webhook_endpoints" not in tables
    assert "webhook_deliveries" not in tables
    await migrate.downgrade(engine, "0002")
    await migrate.upgrade(engine)
    assert await migrate.current_revision(engine) == HEAD_REVISION
    assert await migrate.schema_drift(engine) == []
