"""Programmatic access to orgauth's bundled Alembic migrations.

Every function takes an async engine, so the same code serves the CLI, the standalone
server, host applications and the tests; nothing depends on an ``alembic.ini`` on disk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, Table
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

import orgauth.models  # noqa: F401  (registers the tables in SQLModel's metadata)
from orgauth.migrations.options import VERSION_TABLE, migration_context_options
from orgauth.models import ORGAUTH_TABLES

SCRIPT_LOCATION = "orgauth:migrations"

T = TypeVar("T")


def exclude_orgauth_tables(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """``include_object`` for a host app's own Alembic env: leave orgauth's tables (and
    their indexes and constraints) to orgauth's migrations."""
    if type_ == "table":
        return name not in ORGAUTH_TABLES and name != VERSION_TABLE
    table = getattr(obj, "table", None)
    return table is None or table.name not in ORGAUTH_TABLES


@dataclass(frozen=True)
class Revision:
    """One bundled migration."""

    revision: str
    down_revision: str | None
    message: str
    is_head: bool


def alembic_config() -> Config:
    """An Alembic config pointing at the migrations inside the installed package."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str | None:
    """The newest bundled revision."""
    return script_directory().get_current_head()


def list_revisions() -> list[Revision]:
    """Every bundled revision, newest first."""
    heads = set(script_directory().get_heads())
    return [
        Revision(
            revision=script.revision,
            down_revision=script.down_revision if isinstance(script.down_revision, str) else None,
            message=(script.doc or "").strip(),
            is_head=script.revision in heads,
        )
        for script in script_directory().walk_revisions()
    ]


async def _with_connection(engine: AsyncEngine, work: Callable[[Connection], T]) -> T:
    async with engine.begin() as connection:
        return await connection.run_sync(work)


def _command_runner(action: Callable[[Config], Any]) -> Callable[[Connection], None]:
    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        action(config)

    return run


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (default: the newest)."""
    await _with_connection(engine, _command_runner(lambda cfg: command.upgrade(cfg, revision)))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Revert migrations down to ``revision``.

    ``base`` removes every orgauth table, the version table included, so the database is
    left as if orgauth had never been there.
    """
    run_downgrade = _command_runner(lambda cfg: command.downgrade(cfg, revision))

    def work(connection: Connection) -> None:
        run_downgrade(connection)
        # Alembic keeps its (now empty) version table at base; in the same transaction,
        # so concurrent runs still see one consistent state.
        if _current(connection) is None:
            Table(VERSION_TABLE, MetaData()).drop(connection, checkfirst=True)

    await _with_connection(engine, work)


def _current(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None when orgauth was never migrated there."""
    return await _with_connection(engine, _current)


async def is_at_head(engine: AsyncEngine) -> bool:
    """True when the database is at the newest bundled revision."""
    return await current_revision(engine) == head_revision()


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts=migration_context_options(connection))
    return list(compare_metadata(context, SQLModel.metadata))


async def schema_drift(engine: AsyncEngine) -> list[Any]:
    """Autogenerate operations between orgauth's models and the database (empty: no drift)."""
    return await _with_connection(engine, _diff)


async def generate(engine: AsyncEngine, message: str) -> Path:
    """Autogenerate a new revision into the package's ``versions`` folder (for contributors)."""
    created: list[Any] = []

    def action(config: Config) -> None:
        result = command.revision(config, message=message, autogenerate=True)
        created.extend(result if isinstance(result, list) else [result])

    await _with_connection(engine, _command_runner(action))
    return Path(created[0].path)
