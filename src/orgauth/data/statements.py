"""Running fixed statements cheaply and reading what a write changed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import CursorResult, Executable
from sqlalchemy.ext.asyncio import AsyncEngine


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
    recycling, invalidation and SQLAlchemy's events and instrumentation all apply) and runs
    the statement through SQLAlchemy Core, whose compiled cache makes the per-call cost
    that of the parameters. Pass an :func:`autocommit_engine`.
    """

    def __init__(self, statement: Executable) -> None:
        self.statement = statement

    async def first(
        self, engine: AsyncEngine, params: Mapping[str, Any]
    ) -> Mapping[str, Any] | None:
        """The first row as a mapping of column name to value, or None."""
        async with engine.connect() as connection:
            result = await connection.execute(self.statement, params)
            row = result.mappings().first()
            return dict(row) if row is not None else None

    async def execute(self, engine: AsyncEngine, params: Mapping[str, Any]) -> int:
        """Run a write; return how many rows it changed."""
        async with engine.connect() as connection:
            return affected_rows(await connection.execute(self.statement, params))
