"""A host app's Alembic migrations beside orgauth's (examples/saas/migrations).

orgauth's migrations run first (`orgauth migrate apply`), then the host's (`alembic upgrade
head` with the example's alembic.ini). Each history keeps its own version table, the host's
autogenerate never touches orgauth's tables, and downgrading the host leaves orgauth alone.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Table, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from orgauth import exclude_orgauth_tables, migrate
from orgauth.db import create_engine
from orgauth.migrations.options import VERSION_TABLE
from orgauth.models import ORGAUTH_TABLES
from orgauth.settings import OrgAuthSettings, normalize_database_url
from tests.support.settings import TEST_DATABASE_ENV

from .helpers import host_alembic_config, run_host_alembic

HOST_REVISION = "0001_projects"
HOST_TABLES = {"projects"}


# --- a fresh database per test --------------------------------------------------------------


async def _postgres_admin(base: str, statement: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    admin = make_url(base).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
def fresh_database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a scratch PostgreSQL database."""
    base = os.environ.get(TEST_DATABASE_ENV)
    if not base:
        yield f"sqlite+aiosqlite:///{tmp_path / 'host.db'}"
        return
    base = normalize_database_url(base)
    name = f"orgauth_host_{uuid.uuid4().hex[:12]}"
    asyncio.run(_postgres_admin(base, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_postgres_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def engine(fresh_database_url: str) -> AsyncIterator[AsyncEngine]:
    settings = OrgAuthSettings(_env_file=None, database_url=fresh_database_url)
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


# --- helpers ----------------------------------------------------------------------------


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))


async def versions(engine: AsyncEngine, table: str) -> list[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(text(f"SELECT version_num FROM {table}"))  # noqa: S608
        return [row[0] for row in rows]


def _tables_named_in(diff: Any) -> set[str]:
    """The table names an autogenerate diff (``compare_metadata`` output) touches."""
    names: set[str] = set()
    for item in diff:
        if isinstance(item, list):  # column modifications come grouped
            names |= _tables_named_in(item)
            continue
        for part in item[1:]:
            if isinstance(part, Table):
                names.add(part.name)
            elif getattr(part, "table", None) is not None:
                names.add(part.table.name)
        if item[0] in {"add_column", "remove_column"} or item[0].startswith("modify_"):
            names.add(item[2])
    return names


async def host_autogenerate_diff(engine: AsyncEngine) -> list[Any]:
    """What `alembic revision --autogenerate` in the host's environment would emit."""

    def diff(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={
                "target_metadata": SQLModel.metadata,
                "include_object": exclude_orgauth_tables,
                "compare_type": True,
            },
        )
        return list(compare_metadata(context, SQLModel.metadata))

    async with engine.connect() as connection:
        return await connection.run_sync(diff)


# --- the recipe -----------------------------------------------------------------------------


async def test_orgauth_then_host_migrations_keep_separate_histories(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine)
    await run_host_alembic(engine, lambda config: command.upgrade(config, "head"))

    tables = await table_names(engine)
    assert tables >= ORGAUTH_TABLES | HOST_TABLES | {VERSION_TABLE, "alembic_version"}
    assert await versions(engine, VERSION_TABLE) == [migrate.head_revision()]
    assert await versions(engine, "alembic_version") == [HOST_REVISION]
    assert await migrate.is_at_head(engine)


async def test_host_table_points_at_organizations_with_cascade(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine)
    await run_host_alembic(engine, lambda config: command.upgrade(config, "head"))

    async with engine.connect() as connection:
        foreign_keys = await connection.run_sync(lambda c: inspect(c).get_foreign_keys("projects"))
    by_column = {tuple(fk["constrained_columns"]): fk for fk in foreign_keys}

    organization = by_column[("organization_id",)]
    assert (organization["referred_table"], organization["referred_columns"]) == (
        "organizations",
        ["id"],
    )
    assert organization["options"].get("ondelete") == "CASCADE"
    assert by_column[("created_by",)]["referred_table"] == "users"


async def test_host_autogenerate_sees_no_orgauth_table(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine)
    await run_host_alembic(engine, lambda config: command.upgrade(config, "head"))

    touched = _tables_named_in(await host_autogenerate_diff(engine))

    assert touched & ORGAUTH_TABLES == set()
    assert touched & HOST_TABLES == set()  # the host's migration matches its models


async def test_host_autogenerate_leaves_orgauths_version_table_alone(
    engine: AsyncEngine,
) -> None:
    await migrate.upgrade(engine)
    await run_host_alembic(engine, lambda config: command.upgrade(config, "head"))

    touched = _tables_named_in(await host_autogenerate_diff(engine))

    assert VERSION_TABLE not in touched


async def test_orgauths_autogenerate_ignores_the_host_table(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine)
    await run_host_alembic(engine, lambda config: command.upgrade(config, "head"))

    touched = _tables_named_in(await migrate.schema_drift(engine))

    assert touched & HOST_TABLES == set()


async def test_host_downgrade_leaves_orgauth_intact(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine)
    await run_host_alembic(engine, lambda config: command.upgrade(config, "head"))

    await run_host_alembic(engine, lambda config: command.downgrade(config, "base"))

    tables = await table_names(engine)
    assert tables & HOST_TABLES == set()
    assert tables >= ORGAUTH_TABLES
    assert await versions(engine, "alembic_version") == []
    assert await versions(engine, VERSION_TABLE) == [migrate.head_revision()]

    await run_host_alembic(engine, lambda config: command.upgrade(config, "head"))
    assert await versions(engine, "alembic_version") == [HOST_REVISION]


def test_alembic_command_reads_the_database_from_the_environment(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `alembic -c examples/saas/alembic.ini upgrade head` does: env.py opens its own
    engine on DATABASE_URL (the app's setting), with no connection handed in."""
    monkeypatch.setenv("DATABASE_URL", fresh_database_url)

    async def orgauth_first() -> None:
        engine = create_engine(OrgAuthSettings(_env_file=None))
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(orgauth_first())
    command.upgrade(host_alembic_config(), "head")

    async def check() -> tuple[set[str], list[str]]:
        engine = create_engine(OrgAuthSettings(_env_file=None))
        try:
            return await table_names(engine), await versions(engine, "alembic_version")
        finally:
            await engine.dispose()

    tables, host_versions = asyncio.run(check())
    assert tables >= ORGAUTH_TABLES | HOST_TABLES
    assert host_versions == [HOST_REVISION]
