"""Is the database at orgauth's latest migration? Checked at startup and by ``/health``.

A database nobody migrated is a setup mistake, not an outage: it is reported as such
(naming ``orgauth migrate apply``), never as "try again shortly".
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth.db import is_missing_schema_error
from orgauth.migrations import HEAD_REVISION
from orgauth.migrations.options import VERSION_TABLE

MIGRATE_ADVICE = "run `orgauth migrate apply`"
_CURRENT = text(f"SELECT version_num FROM {VERSION_TABLE}")  # noqa: S608 - a fixed name


async def database_revision(engine: AsyncEngine) -> str | None:
    """The revision recorded in orgauth's version table; None when there is no table (or
    no row). One plain query, so a server never needs to import Alembic for it."""
    async with engine.connect() as connection:
        try:
            rows = (await connection.execute(_CURRENT)).scalars().all()
        except DBAPIError as exc:
            if is_missing_schema_error(exc):
                return None
            raise
    return rows[0] if len(rows) == 1 else None


@dataclass(frozen=True)
class SchemaReport:
    """Where the database is, against the newest bundled revision."""

    current: str | None
    head: str | None

    @property
    def at_head(self) -> bool:
        return self.current == self.head

    def problem(self) -> str:
        """One line saying what is wrong and what to do."""
        if self.current is None:
            return f"the database has no orgauth tables; {MIGRATE_ADVICE}"
        return (
            f"the database schema is at revision {self.current}, not the latest "
            f"({self.head}); {MIGRATE_ADVICE}"
        )


class SchemaWatch:
    """Remembers that the database reached the latest revision.

    Once it has, reports cost nothing (health probes stay a single ``SELECT 1``); until
    then, and again after :meth:`forget` (a request found a table missing), every report
    reads the version table.
    """

    def __init__(self) -> None:
        self._at_head: SchemaReport | None = None

    async def report(self, engine: AsyncEngine) -> SchemaReport:
        if self._at_head is not None:
            return self._at_head
        report = SchemaReport(await database_revision(engine), HEAD_REVISION)
        if report.at_head:
            self._at_head = report
        return report

    def forget(self) -> None:
        self._at_head = None
