"""Is the database at orgauth's latest migration? Checked at startup and by ``/health``.

A database nobody migrated is a setup mistake, not an outage: it is reported as such
(naming ``orgauth migrate apply``), never as "try again shortly".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATE_ADVICE = "run `orgauth migrate apply`"


@lru_cache(maxsize=1)
def latest_revision() -> str | None:
    """The newest bundled revision (read once: it is fixed for an installed package)."""
    from orgauth import migrate

    return migrate.head_revision()


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
        from orgauth import migrate

        report = SchemaReport(await migrate.current_revision(engine), latest_revision())
        if report.at_head:
            self._at_head = report
        return report

    def forget(self) -> None:
        self._at_head = None
