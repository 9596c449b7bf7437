"""The ``orgauth`` command line (Typer + Rich). Heavy modules are imported inside commands."""

from __future__ import annotations

import sys

import typer

from orgauth.cli import audit, health, migrate, serve, sessions, user, webhooks
from orgauth.cli.common import CliError, print_error

app = typer.Typer(
    name="orgauth",
    help="orgauth: authentication, sessions and organizations for FastAPI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.command("serve")(serve.serve)
app.command("health")(health.health)
app.add_typer(migrate.app, name="migrate")
app.add_typer(user.app, name="user")
app.add_typer(sessions.app, name="sessions")
app.add_typer(audit.app, name="audit")
app.add_typer(webhooks.app, name="webhooks")


def _print_version(value: bool) -> None:
    if value:
        from orgauth._version import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,  # handled while parsing, so no command is needed after it
        help="Print the version and exit.",
    ),
) -> None:
    """orgauth: authentication, sessions and organizations for FastAPI."""


def main() -> None:
    """Console-script entry point: user errors are one line and a non-zero exit."""
    try:
        app()
    except CliError as exc:
        print_error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print_error("interrupted")
        sys.exit(130)
