"""``orgauth migrate``: apply, downgrade, inspect and generate the bundled migrations."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from orgauth.cli.common import CliError, fail, load_cli_settings, run_with_engine

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

app = typer.Typer(
    help="Apply and inspect orgauth's bundled database migrations.", no_args_is_help=True
)


def _known_revision(revision: str, *, allow_base: bool) -> None:
    from alembic.util import CommandError

    from orgauth.migrate import script_directory

    if revision in ("head", "heads") or (allow_base and revision == "base"):
        return
    try:
        if script_directory().get_revision(revision) is None:
            raise fail(f"unknown revision '{revision}' (see `orgauth migrate list`)")
    except CommandError:
        raise fail(f"unknown revision '{revision}' (see `orgauth migrate list`)") from None


@app.command("apply")
def apply(
    revision: str = typer.Argument("head", help="Target revision (default: the latest)."),
) -> None:
    """Upgrade the database to REVISION (default: head)."""
    from orgauth import migrate

    settings = load_cli_settings()
    _known_revision(revision, allow_base=False)

    async def work(engine: AsyncEngine) -> str | None:
        await migrate.upgrade(engine, revision)
        return await migrate.current_revision(engine)

    current = run_with_engine(settings, work)
    typer.echo(f"Database at revision {current or 'base'}.")


@app.command("downgrade")
def downgrade(
    revision: str = typer.Argument(..., help="Target revision, or 'base' to remove every table."),
) -> None:
    """Downgrade the database to REVISION."""
    from orgauth import migrate

    settings = load_cli_settings()
    _known_revision(revision, allow_base=True)

    async def work(engine: AsyncEngine) -> str | None:
        await migrate.downgrade(engine, revision)
        return await migrate.current_revision(engine)

    current = run_with_engine(settings, work)
    typer.echo(f"Database at revision {current or 'base'}.")


@app.command("current")
def current() -> None:
    """Print the revision the database is at."""
    from orgauth import migrate

    settings = load_cli_settings()
    revision = run_with_engine(settings, migrate.current_revision)
    head = migrate.head_revision()
    if revision is None:
        typer.echo("base (no orgauth tables; run `orgauth migrate apply`)")
    else:
        typer.echo(f"{revision}{' (head)' if revision == head else ' (pending migrations)'}")


@app.command("list")
def list_revisions() -> None:
    """List the bundled revisions, newest first."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from orgauth import migrate

    table = Table(title="orgauth migrations")
    table.add_column("revision")
    table.add_column("down revision")
    table.add_column("message")
    for revision in migrate.list_revisions():
        label = f"{revision.revision} (head)" if revision.is_head else revision.revision
        table.add_row(label, revision.down_revision or "-", escape(revision.message))
    Console().print(table)


@app.command("check")
def check() -> None:
    """Exit 0 only when the database is reachable and at the latest revision."""
    from orgauth import migrate

    settings = load_cli_settings()
    revision = run_with_engine(settings, migrate.current_revision)
    head = migrate.head_revision()
    if revision != head:
        raise fail(
            f"database at {revision or 'base'}, latest is {head}; run `orgauth migrate apply`"
        )
    typer.echo(f"Database is at the latest revision ({head}).")


@app.command("generate")
def generate(message: str = typer.Argument(..., help="Short description of the change.")) -> None:
    """For orgauth contributors: autogenerate a revision into the package."""
    from orgauth import migrate

    settings = load_cli_settings()

    async def work(engine: AsyncEngine) -> str:
        if not await migrate.is_at_head(engine):
            raise CliError(
                "the database must be at the latest revision; run `orgauth migrate apply`"
            )
        if not await migrate.schema_drift(engine):
            raise CliError("the models match the latest revision; nothing to generate")
        return str(await migrate.generate(engine, message))

    typer.echo(f"Created {run_with_engine(settings, work)}")
