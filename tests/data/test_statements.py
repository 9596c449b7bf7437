"""Running the per-request statements: one round trip each, never beyond the pool."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from orgauth.data.statements import FixedStatement, Statements

SLOW = FixedStatement(text("SELECT 1 AS one"))


async def test_a_burst_of_statements_waits_for_pooled_connections_instead_of_opening_more(
    database_url: str, db: AsyncEngine
) -> None:
    engine = create_async_engine(database_url, pool_size=2, max_overflow=20)
    opened: list[Any] = []
    event.listen(engine.sync_engine, "connect", lambda *args: opened.append(args))
    statements = Statements(engine)
    try:
        rows = await asyncio.gather(*(statements.first(SLOW, {}) for _ in range(25)))
    finally:
        await engine.dispose()

    assert len(rows) == 25
    assert all(row is not None for row in rows)
    assert len(opened) <= 2  # overflow connections would be opened, then closed again


async def test_an_engine_without_a_sized_pool_runs_statements_unbounded(
    database_url: str, db: AsyncEngine
) -> None:
    from sqlalchemy.pool import NullPool

    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        rows = await asyncio.gather(*(Statements(engine).first(SLOW, {}) for _ in range(5)))
    finally:
        await engine.dispose()
    assert [dict(row) for row in rows if row is not None] == [{"one": 1}] * 5
