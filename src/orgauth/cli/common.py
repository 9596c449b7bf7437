"""Helpers shared by the CLI commands: settings, database access and one-line errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from orgauth.settings import OrgAuthSettings

T = TypeVar("T")


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def print_error(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    # The message may quote user input ("[/x]" would otherwise be read as Rich markup).
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[bold red]Error:[/bold red] {escape(message)}", markup=True
    )


def fail(message: str, exit_code: int = 1) -> typer.Exit:
    """Print ``message`` as one error line and return an Exit to raise."""
    print_error(message)
    return typer.Exit(exit_code)


def load_cli_settings() -> OrgAuthSettings:
    """Settings from the environment and .env, or one line naming the bad setting."""
    from orgauth.settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        raise fail(str(exc)) from None


def safe_url(settings: OrgAuthSettings) -> str:
    """The database URL with any password hidden."""
    from sqlalchemy.engine import make_url

    return make_url(settings.sqlalchemy_url).render_as_string(hide_password=True)


def describe_db_error(exc: BaseException) -> str:
    """A short, secret-free reason for a database failure."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()[0] if str(original).strip() else ""
    name = type(original).__name__
    return f"{name}: {text}"[:300] if text else name


def run_with_engine(settings: OrgAuthSettings, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run ``work(engine)`` on a fresh engine, turning database failures into one line."""
    from orgauth.db import create_engine

    async def runner() -> T:
        engine = create_engine(settings)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return run(runner(), settings)


def run(coroutine: Coroutine[Any, Any, T], settings: OrgAuthSettings) -> T:
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    try:
        return asyncio.run(coroutine)
    except CliError as exc:
        raise fail(str(exc), exc.exit_code) from None
    except (DBAPIError, PoolTimeoutError, OSError, TimeoutError) as exc:
        raise fail(
            f"cannot use the database at {safe_url(settings)} ({describe_db_error(exc)})"
        ) from None


async def require_migrated(engine: AsyncEngine) -> None:
    """Refuse to work on a database that orgauth's migrations have not set up."""
    from orgauth import migrate

    current = await migrate.current_revision(engine)
    if current is None:
        raise CliError("the database has no orgauth tables yet; run `orgauth migrate apply`")
    if current != migrate.head_revision():
        raise CliError(
            f"the database is at revision {current}, not the latest; run `orgauth migrate apply`"
        )
