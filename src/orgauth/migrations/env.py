"""Alembic environment for orgauth's bundled migrations.

Runs on the connection handed in by :mod:`orgauth.migrate` (``config.attributes``) and
only ever sees orgauth's own tables, even when a host app shares SQLModel's metadata.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from orgauth.migrations.options import migration_context_options

# Serialises concurrent `migrate apply` runs on PostgreSQL (several hosts deploying at once).
MIGRATION_LOCK_ID = 0x6F72_6761_7574_68


def run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, **migration_context_options(connection))
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})"))
        elif connection.dialect.name == "sqlite" and not _sqlite_in_transaction(connection):
            # Take SQLite's write lock before reading the version table, so concurrent runs
            # (several workers migrating at startup) wait for each other instead of racing
            # into "table already exists".
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        context.run_migrations()


def _sqlite_in_transaction(connection: Connection) -> bool:
    return bool(getattr(connection.connection.driver_connection, "in_transaction", False))


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("orgauth migrations run through `orgauth migrate` or orgauth.migrate")
run_migrations(connection)
