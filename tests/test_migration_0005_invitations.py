"""Revision 0005 (organization invitations) with rows present: upgrading adds the table and
changes no existing row, the partial unique index keeps one pending invitation per
(organization, email), downgrading drops the table and keeps users, organizations and
memberships, and the round trip to the core's base is clean, on SQLite and PostgreSQL.

The rows are written with SQLAlchemy Core on tables declared here, not through the models,
which always describe the newest schema.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Boolean, Column, MetaData, String, Table, Uuid, insert, inspect
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth import migrate
from orgauth.db import create_engine
from orgauth.models import UTCDateTime
from orgauth.settings import OrgAuthSettings

BEFORE = "0004"
REVISION = "0005"
NOW = datetime(2026, 12, 3, 17, 30, tzinfo=UTC)

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
invitations = Table(
    "organization_invitations",
    MetaData(),
    Column("id", Uuid()),
    Column("organization_id", Uuid()),
    Column("email", String()),
    Column("role", String()),
    Column("status", String()),
    Column("token_hash", String()),
    Column("inviter_id", Uuid()),
    Column("created_at", UTCDateTime()),
    Column("updated_at", UTCDateTime()),
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


async def _seed(engine: AsyncEngine) -> dict[str, Any]:
    """At 0004: two users, an organization, a membership."""
    await migrate.upgrade(engine, BEFORE)
    owner, guest, org = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with engine.begin() as connection:
        await connection.execute(
            insert(users),
            [
                {
                    "id": user_id,
                    "email": email,
                    "hashed_password": "not-a-real-hash",
                    "is_active": True,
                    "is_superuser": False,
                    "created_at": NOW,
                    "updated_at": NOW,
                    "password_changed_at": NOW,
                }
                for user_id, email in ((owner, "owner@example.com"), (guest, "guest@example.com"))
            ],
        )
        await connection.execute(
            insert(organizations).values(
                id=org, name="Acme", slug="acme", created_at=NOW, updated_at=NOW
            )
        )
        await connection.execute(
            insert(members).values(organization_id=org, user_id=owner, role="owner", joined_at=NOW)
        )
    return {"owner": owner, "guest": guest, "org": org}


async def _snapshot(engine: AsyncEngine) -> tuple[list[Any], list[Any], list[Any]]:
    async with engine.connect() as connection:
        return (
            sorted((await connection.execute(sa_select(users.c.id, users.c.email))).all()),
            sorted((await connection.execute(sa_select(organizations.c.id))).all()),
            sorted((await connection.execute(sa_select(members))).all()),
        )


def _invitation(org: uuid.UUID, inviter: uuid.UUID, **fields: Any) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "organization_id": org,
        "email": "guest@example.com",
        "role": "member",
        "status": "pending",
        "token_hash": uuid.uuid4().hex * 2,
        "inviter_id": inviter,
        "created_at": NOW,
        "updated_at": NOW,
        "expires_at": NOW + timedelta(days=7),
    } | fields


async def _table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))


async def test_upgrade_adds_the_table_and_keeps_every_row(engine: AsyncEngine) -> None:
    seed = await _seed(engine)
    before = await _snapshot(engine)

    await migrate.upgrade(engine, REVISION)

    assert await migrate.current_revision(engine) == REVISION
    assert await _snapshot(engine) == before
    assert "organization_invitations" in await _table_names(engine)
    async with engine.begin() as connection:
        await connection.execute(
            insert(invitations).values(**_invitation(seed["org"], seed["owner"]))
        )


async def test_one_pending_invitation_per_address_and_history_is_kept(
    engine: AsyncEngine,
) -> None:
    seed = await _seed(engine)
    await migrate.upgrade(engine, REVISION)
    async with engine.begin() as connection:
        await connection.execute(
            insert(invitations).values(**_invitation(seed["org"], seed["owner"]))
        )
        await connection.execute(
            insert(invitations).values(**_invitation(seed["org"], seed["owner"], status="revoked"))
        )
    with pytest.raises(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(
                insert(invitations).values(**_invitation(seed["org"], seed["owner"]))
            )
    with pytest.raises(IntegrityError):  # the status check
        async with engine.begin() as connection:
            await connection.execute(
                insert(invitations).values(
                    **_invitation(
                        seed["org"], seed["owner"], email="x@example.com", status="expired"
                    )
                )
            )


async def test_deleting_the_inviter_keeps_the_invitation_and_the_organization_cascades(
    engine: AsyncEngine,
) -> None:
    seed = await _seed(engine)
    await migrate.upgrade(engine, REVISION)
    row = _invitation(seed["org"], seed["guest"])
    async with engine.begin() as connection:
        await connection.execute(insert(invitations).values(**row))
        await connection.execute(users.delete().where(users.c.id == seed["guest"]))
        inviter = await connection.scalar(
            sa_select(invitations.c.inviter_id).where(invitations.c.id == row["id"])
        )
        assert inviter is None
        await connection.execute(organizations.delete().where(organizations.c.id == seed["org"]))
        assert (await connection.execute(sa_select(invitations.c.id))).all() == []


async def test_downgrade_drops_the_table_and_the_round_trip_is_clean(
    engine: AsyncEngine,
) -> None:
    seed = await _seed(engine)
    await migrate.upgrade(engine, REVISION)
    async with engine.begin() as connection:
        await connection.execute(
            insert(invitations).values(**_invitation(seed["org"], seed["owner"]))
        )
    before = await _snapshot(engine)

    await migrate.downgrade(engine, BEFORE)
    assert "organization_invitations" not in await _table_names(engine)
    assert await _snapshot(engine) == before
    await migrate.downgrade(engine, "0002")
    await migrate.upgrade(engine, REVISION)

    assert await migrate.current_revision(engine) == REVISION
    assert await _snapshot(engine) == before
    await migrate.upgrade(engine)  # the models describe the head, not this revision
    assert await migrate.schema_drift(engine) == []
