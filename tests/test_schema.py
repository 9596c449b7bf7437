"""The migration state a running server checks without Alembic."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth import migrate
from orgauth.migrations import HEAD_REVISION
from orgauth.schema import SchemaWatch, database_revision


def test_the_head_revision_constant_is_the_scripts_head() -> None:
    assert migrate.head_revision() == HEAD_REVISION


async def test_database_revision_reads_the_version_table(db: AsyncEngine) -> None:
    assert await database_revision(db) == await migrate.current_revision(db) == HEAD_REVISION


async def test_a_report_at_head_is_remembered_until_forgotten(db: AsyncEngine) -> None:
    watch = SchemaWatch()
    first = await watch.report(db)
    assert first.at_head
    assert await watch.report(db) is first
    watch.forget()
    assert await watch.report(db) is not first
