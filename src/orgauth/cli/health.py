"""``orgauth health``: check settings and database, print a table, exit 0 or 1."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from orgauth.cli.common import describe_db_error, load_cli_settings, safe_url

if TYPE_CHECKING:
    from orgauth.settings import OrgAuthSettings


def health() -> None:
    """Check the settings and the database; exit 1 when anything is wrong."""
    import asyncio

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    settings = load_cli_settings()
    rows = asyncio.run(_checks(settings))
    table = Table(title="orgauth health")
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    for name, ok, detail in rows:
        table.add_row(name, "[green]ok[/green]" if ok else "[red]fail[/red]", escape(detail))
    Console().print(table)
    if not all(ok for _, ok, _ in rows):
        raise typer.Exit(1)


async def _checks(settings: OrgAuthSettings) -> list[tuple[str, bool, str]]:
    from orgauth import migrate
    from orgauth.data.statements import Statements
    from orgauth.db import create_engine, ping

    rows: list[tuple[str, bool, str]] = [
        ("settings", True, f"environment={settings.environment}"),
    ]
    engine = create_engine(settings)
    try:
        try:
            latency = await asyncio_timeout(ping(Statements(engine)))
            rows.append(("database", True, f"{safe_url(settings)} ({latency:.1f} ms)"))
        except Exception as exc:  # reported in the table, never a traceback
            rows.append(("database", False, f"{safe_url(settings)}: {describe_db_error(exc)}"))
            return rows
        current = await migrate.current_revision(engine)
        head = migrate.head_revision()
        if current == head:
            rows.append(("migrations", True, f"at {head} (latest)"))
        else:
            rows.append(
                (
                    "migrations",
                    False,
                    f"at {current or 'base'}, latest {head}: run `orgauth migrate apply`",
                )
            )
    finally:
        await engine.dispose()
    return rows


async def asyncio_timeout(awaitable: object, seconds: float = 5.0) -> float:
    import asyncio

    return await asyncio.wait_for(awaitable, seconds)  # type: ignore[arg-type]
