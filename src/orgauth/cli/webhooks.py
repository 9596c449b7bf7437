"""``orgauth webhooks``: the delivery worker in the foreground (docs/DEPLOYMENT.md)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import typer

from orgauth.cli.common import load_cli_settings, require_migrated, run_with_engine

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from orgauth.webhooks.worker import Tally

app = typer.Typer(help="Deliver signed webhooks.", no_args_is_help=True)


@app.command("deliver")
def deliver(
    once: bool = typer.Option(
        False, "--once", help="Make one attempt of every delivery due now, then exit."
    ),
) -> None:
    """Run the delivery worker until SIGINT or SIGTERM (or, with --once, one pass)."""
    settings = load_cli_settings()

    async def work(engine: AsyncEngine) -> Tally | None:
        from orgauth.db import create_sessionmaker
        from orgauth.webhooks.worker import WebhookWorker

        await require_migrated(engine)
        worker = WebhookWorker(create_sessionmaker(engine), settings)
        if once:
            try:
                return await worker.deliver_due()
            finally:
                await worker.aclose()
        await _run_until_signalled(worker.run())
        return None

    tally = run_with_engine(settings, work)
    if tally is not None:
        typer.echo(
            f"Attempted {tally.attempted} deliveries: {tally.succeeded} succeeded, "
            f"{tally.failed} failed."
        )


async def _run_until_signalled(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run the worker until SIGINT or SIGTERM, then stop it cleanly."""
    task = asyncio.ensure_future(coroutine)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
