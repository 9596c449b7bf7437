"""``orgauth serve``: run the standalone server with uvicorn."""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

import typer

from orgauth.cli.common import fail, load_cli_settings, run_with_engine

if TYPE_CHECKING:
    from types import FrameType

    from sqlalchemy.ext.asyncio import AsyncEngine

    from orgauth.settings import OrgAuthSettings

# The server process: a fresh interpreter running run_server() with serve's options.
_SERVER_CODE = (
    "import json, sys; from orgauth.cli.serve import run_server; "
    "run_server(**json.loads(sys.argv[1]))"
)


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
    access_log: bool = typer.Option(
        True, "--access-log/--no-access-log", help="Log a line for every request."
    ),
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

    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "workers": workers,
        "reload": reload,
        "access_log": access_log,
    }
    if os.name != "posix":  # no exec() that keeps the process: serve from this one
        run_server(**options)
        return
    # The checks above loaded Alembic, the migration scripts and a database engine (about
    # 17 MiB that a server never uses again): serve from a fresh interpreter instead, in
    # this same process (same PID, signals and standard streams).
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [sys.executable, "-c", _SERVER_CODE, json.dumps(options)]
    os.execv(sys.executable, argv)  # noqa: S606 - this interpreter, fixed code


def run_server(*, host: str, port: int, workers: int, reload: bool, access_log: bool) -> None:
    """Serve the standalone app with uvicorn (after :func:`serve`'s checks)."""
    import uvicorn

    from orgauth.logs import uvicorn_log_config
    from orgauth.settings import load_settings

    settings = load_settings()
    server: dict[str, Any] = {
        # httptools with a bound on the request head (uvicorn has none for httptools).
        "http": "orgauth.server:BoundedHttpToolsProtocol",
        "proxy_headers": False,  # orgauth applies FORWARDED_ALLOW_IPS itself
        "server_header": False,
        "access_log": access_log,
        "log_level": settings.log_level.lower(),
        "log_config": uvicorn_log_config(settings),
        "timeout_graceful_shutdown": 30,
    }
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
            **server,
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
