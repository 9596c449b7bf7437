"""Alembic environment of the SaaS example: the host's own tables, beside orgauth's.

* ``include_object=exclude_orgauth_tables``: autogenerate neither creates, alters nor drops
  orgauth's tables; `orgauth migrate apply` owns them.
* The version table is Alembic's default, ``alembic_version``; orgauth keeps its own
  (``orgauth_alembic_version``), so the two histories never mix.
* The database comes from the example's settings (``DATABASE_URL`` or ``POSTGRES_*``, else
  ``./example-saas.db``: ``settings.py``), the same one the app uses. A caller may instead
  hand in an open connection as ``config.attributes["connection"]`` (tests, or a deploy
  script that migrates both).
"""

import asyncio
from logging.config import fileConfig

import examples.saas.models  # noqa: F401  (registers the host's tables in SQLModel.metadata)
from alembic import context
from examples.saas.settings import example_settings
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

from orgauth import exclude_orgauth_tables

config = context.config
target_metadata = SQLModel.metadata

# The [logger_*] sections of alembic.ini, for the `alembic` command line. Programs that run
# migrations in-process (tests, deploy scripts) keep their own logging configuration with
# config.attributes["configure_logger"] = False.
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    return config.get_main_option("sqlalchemy.url") or example_settings().sqlalchemy_url


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=exclude_orgauth_tables,
        render_as_batch=connection.dialect.name == "sqlite",  # ALTER TABLE on SQLite
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    engine = create_async_engine(database_url())
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run_migrations)
    finally:
        await engine.dispose()


def run_offline() -> None:
    """`alembic upgrade head --sql`: print the SQL instead of running it."""
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        include_object=exclude_orgauth_tables,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
elif context.is_offline_mode():
    run_offline()
else:
    asyncio.run(run_online())
