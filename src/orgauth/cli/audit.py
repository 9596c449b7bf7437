"""``orgauth audit``: maintenance of the stored audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from orgauth.cli.common import fail, load_cli_settings, require_migrated, run_with_engine

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

app = typer.Typer(help="Maintain the stored audit log.", no_args_is_help=True)


@app.command("prune")
def prune(
    older_than: int | None = typer.Option(
        None,
        "--older-than",
        min=1,
        metavar="DAYS",
        help="Delete events older than DAYS days (default: AUDIT_RETENTION_DAYS).",
    ),
) -> None:
    """Delete audit events older than DAYS; print how many."""
    settings = load_cli_settings()
    days = older_than if older_than is not None else settings.audit_retention_days
    if days <= 0:
        raise fail("AUDIT_RETENTION_DAYS is 0 (keep events forever): pass --older-than DAYS")

    async def work(engine: AsyncEngine) -> int:
        from orgauth.db import create_sessionmaker
        from orgauth.services.audit_log import prune_events

        await require_migrated(engine)
        async with create_sessionmaker(engine)() as session:
            deleted = await prune_events(session, older_than_days=days)
            await session.commit()
            return deleted

    deleted = run_with_engine(settings, work)
    typer.echo(f"Pruned {deleted} audit events.")
