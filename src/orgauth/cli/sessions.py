"""``orgauth sessions``: maintenance of stored sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from orgauth.cli.common import load_cli_settings, require_migrated, run_with_engine

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from orgauth.services.maintenance import PruneResult

app = typer.Typer(help="Maintain stored sessions.", no_args_is_help=True)


@app.command("prune")
def prune() -> None:
    """Delete expired and revoked sessions, spent tokens and finished webhook deliveries
    past WEBHOOK_DELIVERY_RETENTION_DAYS; print how many."""
    from orgauth.services.maintenance import prune_expired

    settings = load_cli_settings()

    async def work(engine: AsyncEngine) -> PruneResult:
        from orgauth.db import create_sessionmaker
        from orgauth.services.context import SessionPolicy

        await require_migrated(engine)
        async with create_sessionmaker(engine)() as session:
            return await prune_expired(
                session,
                webhook_retention_days=settings.webhook_delivery_retention_days,
                policy=SessionPolicy.of(settings),
            )

    result = run_with_engine(settings, work)
    typer.echo(
        f"Pruned {result.sessions} sessions, {result.refresh_tokens} refresh tokens "
        f"and {result.reset_tokens} password reset tokens."
    )
    typer.echo(f"Pruned {result.verification_tokens} email verification tokens.")
    typer.echo(f"Pruned {result.webhook_deliveries} webhook deliveries.")
