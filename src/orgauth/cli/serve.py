"""``orgauth serve``: run the standalone server with uvicorn."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import typer

from orgauth.cli.common import fail, load_cli_settings, run_with_engine

if TYPE_CHECKING:
    from types import FrameType

    from sqlalchemy.ext.asyncio import AsyncEngine

    from orgauth.settings import OrgAuthSettings


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _create_signing_key(settings: OrgAuthSettings) -> None:
    """Read or create the development key file, or fail with one line."""
    from orgauth.settings import SettingsError

    try:
        _ = settings.signing_key
    except SettingsError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(
            f"cannot keep the development secret key in {settings.secret_key_file} "
            f"({exc.strerror or type(exc).__name__}); set SECRET_KEY"
        ) from None


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, max=64, help="Number of worker processes."),
    reload: bool = typer.Option(False, "--reload", help="Restart on code changes (development)."),
) -> None:
    """Run the orgauth server.

    In development pending migrations are applied first; in production the server refuses
    to start unless the database is at the latest migration.
    """
    from orgauth import migrate

    settings = load_cli_settings()
    if reload and workers > 1:
        raise fail("--reload and --workers cannot be combined")
    if reload and settings.is_production:
        raise fail("--reload is for development; do not use it with ENVIRONMENT=production")

    async def prepare(engine: AsyncEngine) -> str | None:
        if not settings.is_production:
            await migrate.upgrade(engine)
        return await migrate.current_revision(engine)

    current = run_with_engine(settings, prepare)
    head = migrate.head_revision()
    if current != head:
        raise fail(
            f"the database is at revision {current or 'base'}, not the latest ({head}); "
            "run `orgauth migrate apply` first"
        )
    _create_signing_key(settings)  # once, before the workers start

    import uvicorn

    from orgauth.logs import uvicorn_log_config

    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again under the
    # handler that was there before; with Python's default one the process would die by
    # the signal (status 143) after a clean shutdown. Exit 0 instead, like other servers.
    previous = signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        uvicorn.run(
            "orgauth.app:create_app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            reload=reload,
            proxy_headers=False,  # orgauth applies FORWARDED_ALLOW_IPS itself
            server_header=False,
            log_level=settings.log_level.lower(),
            log_config=uvicorn_log_config(settings),
            timeout_graceful_shutdown=30,
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
