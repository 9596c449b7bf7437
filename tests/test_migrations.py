"""The bundled migrations: round trip, own version table, no drift, host tables left alone
(README.md, docs/ARCHITECTURE.md)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import Column, Index, Integer, String, Table, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from orgauth import migrate
from orgauth.db import create_engine
from orgauth.migrations.options import VERSION_TABLE
from orgauth.models import ORGAUTH_MODELS, ORGAUTH_TABLES
from orgauth.settings import OrgAuthSettings


def _engine(url: str) -> AsyncEngine:
    return create_engine(OrgAuthSettings(_env_file=None, database_url=url))  # type: ignore[call-arg]


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


async def test_upgrade_creates_every_orgauth_table(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine)

    assert await _table_names(engine) == set(ORGAUTH_TABLES) | {VERSION_TABLE}
    assert await migrate.current_revision(engine) == migrate.head_revision()
    assert await migrate.is_at_head(engine)


async def test_upgrade_downgrade_upgrade_round_trip(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine)
    await migrate.downgrade(engine, "base")

    tables = await _table_names(engine)
    assert tables & ORGAUTH_TABLES == set()
    assert VERSION_TABLE not in tables
    assert "alembic_version" not in tables
    assert await migrate.current_revision(engine) is None
    assert not await migrate.is_at_head(engine)

    await migrate.upgrade(engine)

    assert await _table_names(engine) >= ORGAUTH_TABLES
    assert await migrate.current_revision(engine) == migrate.head_revision()
    assert await migrate.schema_drift(engine) == []


async def test_version_is_recorded_in_orgauths_own_version_table(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine)

    async with engine.connect() as connection:
        versions = (
            await connection.execute(text("SELECT version_num FROM orgauth_alembic_version"))
        ).all()

    assert VERSION_TABLE == "orgauth_alembic_version"
    assert [row[0] for row in versions] == [migrate.head_revision()]
    assert "alembic_version" not in await _table_names(engine)


async def test_upgrading_twice_changes_nothing(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine)
    await migrate.upgrade(engine)

    assert await migrate.current_revision(engine) == migrate.head_revision()
    assert await migrate.schema_drift(engine) == []


async def test_models_match_the_migrated_schema(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine)

    assert await migrate.schema_drift(engine) == []


async def test_unmigrated_database_shows_drift(engine: AsyncEngine) -> None:
    drift = await migrate.schema_drift(engine)

    added = {op[1].name for op in drift if op[0] == "add_table"}
    assert added == set(ORGAUTH_TABLES)


async def test_upgrade_to_a_named_revision(engine: AsyncEngine) -> None:
    first = migrate.list_revisions()[-1].revision

    await migrate.upgrade(engine, first)

    assert await migrate.current_revision(engine) == first


async def test_every_model_index_exists_in_the_migrated_database(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine)

    def reflect(connection: Connection) -> dict[str, dict[str, bool]]:
        inspector = inspect(connection)
        return {
            table: {index["name"]: bool(index["unique"]) for index in inspector.get_indexes(table)}
            for table in ORGAUTH_TABLES
        }

    async with engine.connect() as connection:
        reflected = await connection.run_sync(reflect)

    expected = 0
    for model in ORGAUTH_MODELS:
        table = model.__table__  # type: ignore[attr-defined]
        for index in table.indexes:
            expected += 1
            assert index.name in reflected[table.name], index.name
            assert reflected[table.name][index.name] == bool(index.unique), index.name
    assert expected >= 10


def test_head_revision_is_the_newest_listed_revision() -> None:
    revisions = migrate.list_revisions()

    assert revisions
    assert migrate.head_revision() == revisions[0].revision
    assert [r.is_head for r in revisions] == [True] + [False] * (len(revisions) - 1)
    assert revisions[-1].down_revision is None
    for newer, older in itertools.pairwise(revisions):
        assert newer.down_revision == older.revision
    assert all(r.message for r in revisions)


def test_initial_revision_is_bundled() -> None:
    assert migrate.list_revisions()[-1].revision == "0001"


# --- host application tables ---------------------------------------------------------------


@pytest.fixture
def host_table() -> Iterator[Table]:
    """A host app's own table, registered in SQLModel's shared metadata for this test only."""
    name = f"host_widgets_{uuid.uuid4().hex[:8]}"
    table = Table(
        name,
        SQLModel.metadata,
        Column("id", Integer, primary_key=True),
        Column("label", String(50), nullable=False),
        Index(f"ix_{name}_label", "label"),
    )
    try:
        yield table
    finally:
        SQLModel.metadata.remove(table)


async def test_host_table_in_metadata_is_not_created_by_orgauth(
    engine: AsyncEngine, host_table: Table
) -> None:
    await migrate.upgrade(engine)

    assert host_table.name not in await _table_names(engine)
    assert await migrate.schema_drift(engine) == []


async def test_host_table_in_database_survives_orgauth_migrations(
    engine: AsyncEngine, host_table: Table
) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(lambda c: host_table.create(c))
        await connection.execute(host_table.insert().values(id=1, label="kept"))
    try:
        await migrate.upgrade(engine)
        assert await migrate.schema_drift(engine) == []

        await migrate.downgrade(engine, "base")
        await migrate.upgrade(engine)

        assert host_table.name in await _table_names(engine)
        async with engine.connect() as connection:
            rows = (await connection.execute(host_table.select())).all()
        assert [tuple(row) for row in rows] == [(1, "kept")]
        assert await migrate.schema_drift(engine) == []
    finally:
        async with engine.begin() as connection:
            await connection.run_sync(lambda c: host_table.drop(c))


async def test_host_apps_own_alembic_version_table_is_left_alone(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        )
        await connection.execute(text("INSERT INTO alembic_version VALUES ('host_rev_42')"))
    try:
        await migrate.upgrade(engine)
        await migrate.downgrade(engine, "base")
        await migrate.upgrade(engine)

        async with engine.connect() as connection:
            host = (await connection.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert [row[0] for row in host] == ["host_rev_42"]
        assert await migrate.current_revision(engine) == migrate.head_revision()
    finally:
        async with engine.begin() as connection:
            await connection.execute(text("DROP TABLE alembic_version"))
