"""Async engine and session factory for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from orgauth.settings import OrgAuthSettings

_PING = text("SELECT 1")
SQLITE_BUSY_TIMEOUT_MS = 10_000
POSTGRES_CONNECT_TIMEOUT_S = 5
POSTGRES_COMMAND_TIMEOUT_S = 30


def create_engine(settings: OrgAuthSettings, **overrides: Any) -> AsyncEngine:
    """Create the async engine for the database named by ``settings``."""
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        return _create_sqlite_engine(url, **overrides)
    options: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout,
        "pool_recycle": settings.db_pool_recycle,
        "connect_args": {
            "timeout": POSTGRES_CONNECT_TIMEOUT_S,
            "command_timeout": POSTGRES_COMMAND_TIMEOUT_S,
            "server_settings": {"application_name": "orgauth"},
        },
    }
    options.update(overrides)
    return create_async_engine(url, **options)


def _create_sqlite_engine(url: str, **overrides: Any) -> AsyncEngine:
    in_memory = ":memory:" in url or url.rstrip("/").endswith("sqlite+aiosqlite:")
    options: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}}
    if in_memory:
        # One shared connection, or every new connection would see an empty database.
        options.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    options.update(overrides)
    engine = create_async_engine(url, **options)
    event.listen(engine.sync_engine, "connect", _configure_sqlite_connection)
    return engine


def _configure_sqlite_connection(
    dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry
) -> None:
    """Foreign keys on, WAL journal and a busy timeout, on every new SQLite connection."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Session factory: objects stay usable after commit, no autoflush surprises."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def ping(engine: AsyncEngine) -> float:
    """Run a trivial query; return its round-trip latency in milliseconds."""
    started = time.perf_counter()
    async with engine.connect() as connection:
        # Autocommit: one round trip, no BEGIN/ROLLBACK around the probe.
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(_PING)
    return (time.perf_counter() - started) * 1000
