"""Running fixed statements cheaply and reading what a write changed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Engine, Executable
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool
from sqlalchemy.util import greenlet_spawn

T = TypeVar("T")


def affected_rows(result: object) -> int:
    """How many rows an UPDATE or DELETE matched (0 for results without a count)."""
    return int(result.rowcount) if isinstance(result, CursorResult) else 0


class FixedStatement:
    """A prebuilt Core statement for the per-request paths; run it with :class:`Statements`.

    Built once, so SQLAlchemy's compiled cache makes each call cost its parameters only.
    """

    def __init__(self, statement: Executable) -> None:
        self.statement = statement

    def first_row(self, engine: Engine, params: Mapping[str, Any]) -> Mapping[str, Any] | None:
        with engine.connect() as connection:
            row = connection.execute(self.statement, params).mappings().first()
            return cast("Mapping[str, Any] | None", row)

    def changed_rows(self, engine: Engine, params: Mapping[str, Any]) -> int:
        with engine.connect() as connection:
            return affected_rows(connection.execute(self.statement, params))


class Statements:
    """Runs :class:`FixedStatement` s on one engine, each in one round trip.

    * Each statement checks a connection out of the engine's pool as usual (pre-ping,
      recycling, invalidation and SQLAlchemy's events all apply), in autocommit mode (no
      ``BEGIN``/``COMMIT`` around a single statement; the drivers switch it client-side),
      and returns it at once: checking out, running and returning take one hop into
      SQLAlchemy's synchronous API (one greenlet, where ``async with engine.connect()``
      takes three).
    * At most as many run at once as the pool keeps connections: a burst of requests
      waits a moment for a pooled connection rather than opening overflow connections that
      the pool closes again as soon as they come back (a new server process and handshake
      each, paid by the waiting request).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT").sync_engine
        pool = engine.sync_engine.pool
        size = pool.size() if isinstance(pool, QueuePool) else 0
        self._slots = asyncio.Semaphore(size) if size > 0 else None

    async def first(
        self, statement: FixedStatement, params: Mapping[str, Any]
    ) -> Mapping[str, Any] | None:
        """The first row as a mapping of column name to value, or None."""
        row: Mapping[str, Any] | None = await self._call(statement.first_row, params)
        return row

    async def execute(self, statement: FixedStatement, params: Mapping[str, Any]) -> int:
        """Run a write; how many rows it changed."""
        count: int = await self._call(statement.changed_rows, params)
        return count

    async def _call(
        self, work: Callable[[Engine, Mapping[str, Any]], T], params: Mapping[str, Any]
    ) -> T:
        if self._slots is None:
            return cast(T, await greenlet_spawn(work, self._autocommit, params))
        async with self._slots:
            return cast(T, await greenlet_spawn(work, self._autocommit, params))
