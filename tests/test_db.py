"""Engines: SQLite pragmas, PostgreSQL pool settings and the ping probe (docs/CONFIGURATION.md,
docs/ARCHITECTURE.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.pool import QueuePool

from orgauth import OrgAuth
from orgauth.data.statements import Statements
from orgauth.db import SQLITE_BUSY_TIMEOUT_MS, create_engine, create_sessionmaker, ping
from orgauth.settings import OrgAuthSettings
from tests.support.settings import is_postgres_run, make_settings


def _settings(**values: Any) -> OrgAuthSettings:
    return OrgAuthSettings(_env_file=None, **values)  # type: ignore[call-arg]


async def _pragma(engine: AsyncEngine, name: str) -> Any:
    async with engine.connect() as connection:
        return (await connection.execute(text(f"PRAGMA {name}"))).scalar_one()


async def test_sqlite_connections_enforce_foreign_keys_wal_and_busy_timeout(
    tmp_path: Path,
) -> None:
    engine = create_engine(_settings(database_url=f"sqlite:///{tmp_path / 'pragmas.db'}"))
    try:
        assert await _pragma(engine, "foreign_keys") == 1
        assert str(await _pragma(engine, "journal_mode")).lower() == "wal"
        assert await _pragma(engine, "busy_timeout") == SQLITE_BUSY_TIMEOUT_MS
        assert SQLITE_BUSY_TIMEOUT_MS >= 1000
    finally:
        await engine.dispose()


async def test_every_new_sqlite_connection_gets_the_pragmas(tmp_path: Path) -> None:
    engine = create_engine(_settings(database_url=f"sqlite:///{tmp_path / 'pool.db'}"))
    try:
        async with engine.connect() as first, engine.connect() as second:
            for connection in (first, second):
                pragma = await connection.execute(text("PRAGMA foreign_keys"))
                assert pragma.scalar_one() == 1
    finally:
        await engine.dispose()


async def test_in_memory_sqlite_keeps_one_shared_database() -> None:
    engine = create_engine(_settings(database_url="sqlite:///:memory:"))
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE kept (id INTEGER PRIMARY KEY)"))
        async with engine.connect() as connection:
            result = await connection.execute(text("SELECT count(*) FROM kept"))
            assert result.scalar_one() == 0
        assert await _pragma(engine, "foreign_keys") == 1
    finally:
        await engine.dispose()


async def test_postgresql_pool_uses_default_settings() -> None:
    engine = create_engine(_settings(database_url="postgresql://app@db.invalid/app"))
    try:
        pool = engine.pool
        assert isinstance(pool, QueuePool)
        assert engine.dialect.driver == "asyncpg"
        assert pool.size() == 20
        assert pool._max_overflow == 50
        assert pool.timeout() == 30
        assert pool._recycle == 3600
    finally:
        await engine.dispose()


async def test_postgresql_pool_follows_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db.invalid/app")
    monkeypatch.setenv("DB_POOL_SIZE", "7")
    monkeypatch.setenv("DB_MAX_OVERFLOW", "3")
    monkeypatch.setenv("DB_POOL_TIMEOUT", "4.5")
    monkeypatch.setenv("DB_POOL_RECYCLE", "120")
    engine = create_engine(OrgAuthSettings())
    try:
        pool = engine.pool
        assert isinstance(pool, QueuePool)
        assert pool.size() == 7
        assert pool._max_overflow == 3
        assert pool.timeout() == 4.5
        assert pool._recycle == 120
    finally:
        await engine.dispose()


async def test_ping_reports_latency_on_the_test_database(db: AsyncEngine) -> None:
    latency = await ping(Statements(db))

    assert isinstance(latency, float)
    assert 0 <= latency < 5000


async def test_ping_fails_when_the_database_is_unreachable() -> None:
    engine = create_engine(_settings(database_url="postgresql://postgres@127.0.0.1:1/x"))
    try:
        with pytest.raises((OSError, ConnectionError)):
            await ping(Statements(engine))
    finally:
        await engine.dispose()


async def test_sessionmaker_keeps_objects_usable_after_commit(db: AsyncEngine) -> None:
    sessionmaker = create_sessionmaker(db)

    assert sessionmaker.kw["expire_on_commit"] is False
    assert sessionmaker.kw["autoflush"] is False
    async with sessionmaker() as session:
        assert (await session.execute(text("SELECT 1"))).scalar_one() == 1


async def _stick_connection(session: AsyncSession) -> asyncio.Task[Any]:
    """Leave the session's asyncpg connection with an operation in progress."""
    await session.execute(text("SELECT 1"))  # a transaction is open on the connection
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    busy = asyncio.create_task(driver.fetch("SELECT pg_sleep(30)"))
    await asyncio.sleep(0.05)  # sent; invalidating the connection ends it early
    return busy


@pytest.mark.skipif(not is_postgres_run(), reason="asyncpg protocol state")
async def test_a_stuck_postgresql_connection_is_an_outage_and_is_discarded(
    db: AsyncEngine,
) -> None:
    sessionmaker = create_sessionmaker(db)
    async with sessionmaker() as session:
        busy = await _stick_connection(session)
        with pytest.raises(DBAPIError) as raised:
            await session.execute(text("SELECT 1"))
        # Invalidated, so the pool never hands it out again; the API answers 503.
        assert raised.value.connection_invalidated
        await session.rollback()
    with contextlib.suppress(Exception):
        await busy
    assert await ping(Statements(db)) >= 0  # the pool hands out a working connection
    assert db.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


@pytest.mark.skipif(not is_postgres_run(), reason="asyncpg protocol state")
async def test_request_session_teardown_survives_a_stuck_connection(
    db: AsyncEngine, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    auth = OrgAuth(make_settings(database_url, tmp_path), engine=db)
    get_db = auth.dependencies.get_db()
    session = await anext(get_db)
    busy = await _stick_connection(session)
    with caplog.at_level(logging.WARNING, logger="orgauth.db"):
        await get_db.aclose()  # the rollback fails; it must not raise
    with contextlib.suppress(Exception):
        await busy
    assert any("broken database connection" in r.getMessage() for r in caplog.records)
    assert await ping(Statements(db)) >= 0  # the pool hands out a working connection
    assert db.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
