"""Running fixed statements cheaply and reading what a write changed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import ClauseElement, Connection, CursorResult, Engine, Executable
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn


def affected_rows(result: object) -> int:
    """How many rows an UPDATE or DELETE matched (0 for results without a count)."""
    return int(result.rowcount) if isinstance(result, CursorResult) else 0


def autocommit_engine(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` (same pool) with every connection in autocommit mode.

    A single statement then needs no ``BEGIN``/``COMMIT`` around it: one round trip. The
    drivers orgauth supports switch the mode client-side, without a statement.
    """
    return engine.execution_options(isolation_level="AUTOCOMMIT")


class FixedStatement:
    """A prebuilt Core statement for the per-request paths, run in one round trip.

    Each call checks a connection out of the engine's pool as usual (so pre-ping,
    recycling, invalidation and SQLAlchemy's events and instrumentation all apply), runs
    the statement and returns the connection, all in one hop into SQLAlchemy's
    synchronous API (one greenlet, where ``async with engine.connect()`` takes three).
    Pass an :func:`autocommit_engine`.

    On asyncpg the statement is compiled once and sent with ``exec_driver_sql``: asyncpg's
    own codecs already produce what the column types would (aware UTC datetimes, UUIDs),
    so the per-call compile-cache lookup and result processing are skipped. Any other
    driver runs the Core statement itself.
    """

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._asyncpg: tuple[str, tuple[str, ...]] | None = None

    async def first(
        self, engine: AsyncEngine, params: Mapping[str, Any]
    ) -> Mapping[str, Any] | None:
        """The first row as a mapping of column name to value, or None."""
        row: Mapping[str, Any] | None = await greenlet_spawn(
            self._first, engine.sync_engine, params
        )
        return row

    async def execute(self, engine: AsyncEngine, params: Mapping[str, Any]) -> int:
        """Run a write; return how many rows it changed."""
        count: int = await greenlet_spawn(self._execute, engine.sync_engine, params)
        return count

    def _first(self, engine: Engine, params: Mapping[str, Any]) -> Mapping[str, Any] | None:
        with engine.connect() as connection:
            row = self._run(connection, params).mappings().first()
            return dict(row) if row is not None else None

    def _execute(self, engine: Engine, params: Mapping[str, Any]) -> int:
        with engine.connect() as connection:
            return affected_rows(self._run(connection, params))

    def _run(self, connection: Connection, params: Mapping[str, Any]) -> CursorResult[Any]:
        if connection.dialect.driver != "asyncpg":
            return cast(CursorResult[Any], connection.execute(self.statement, params))
        if self._asyncpg is None:
            compiled = cast(
                SQLCompiler,
                cast(ClauseElement, self.statement).compile(dialect=connection.dialect),
            )
            self._asyncpg = (str(compiled), tuple(compiled.positiontup or ()))
        sql, names = self._asyncpg
        return cast(
            CursorResult[Any],
            connection.exec_driver_sql(sql, tuple(params[name] for name in names)),
        )
