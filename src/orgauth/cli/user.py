"""``orgauth user``: manage accounts from the command line."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from orgauth.cli.common import CliError, fail, load_cli_settings, require_migrated, run_with_engine

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from orgauth.services.users import SuperuserResult

app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)


@app.command("create-superuser")
def create_superuser(
    email: str = typer.Option(
        None,
        "--email",
        help="Email of the superuser (prompted if absent; required with --password-stdin).",
    ),
    first_name: str = typer.Option(None, "--first-name", help="First name."),
    last_name: str = typer.Option(None, "--last-name", help="Last name."),
    password_stdin: bool = typer.Option(
        False,
        "--password-stdin",
        help="Read the password from standard input (needs --email).",
    ),
) -> None:
    """Create a superuser, or promote the existing account with that email.

    An existing account keeps its password: none is asked for, and one given on standard
    input is not used (the output says so).
    """
    from orgauth.security.passwords import PasswordHasher, WeakPasswordError
    from orgauth.services.users import ensure_superuser, get_user_by_email
    from orgauth.validation import InvalidEmailError, normalize_email

    if email is None and password_stdin:
        # Standard input carries the password: prompting there would read it as the email.
        raise fail("--password-stdin needs --email")
    settings = load_cli_settings()
    if email is None:
        email = typer.prompt("Email")
    try:
        normalized = normalize_email(email)
    except InvalidEmailError as exc:
        raise fail(str(exc)) from None
    for label, value in (("--first-name", first_name), ("--last-name", last_name)):
        if value is not None and (len(value) > 100 or "\x00" in value):
            raise fail(f"{label} must be at most 100 characters")

    async def exists(engine: AsyncEngine) -> bool:
        from orgauth.db import create_sessionmaker

        await require_migrated(engine)
        async with create_sessionmaker(engine)() as session:
            return await get_user_by_email(session, normalized) is not None

    try:
        password = None if run_with_engine(settings, exists) else _read_password(password_stdin)
    except CliError as exc:
        raise fail(str(exc)) from None

    async def work(engine: AsyncEngine) -> SuperuserResult:
        from orgauth.db import create_sessionmaker

        hasher = PasswordHasher(settings.bcrypt_rounds)
        try:
            async with create_sessionmaker(engine)() as session:
                return await ensure_superuser(
                    session,
                    hasher=hasher,
                    email=normalized,
                    password=password,
                    min_password_length=settings.password_min_length,
                    first_name=first_name,
                    last_name=last_name,
                )
        finally:
            hasher.close()

    try:
        result = run_with_engine(settings, work)
    except WeakPasswordError as exc:
        raise fail(f"password refused: {exc}") from None
    if result.created:
        typer.echo(f"Superuser {result.user.email} created.")
        return
    kept = "the account keeps its password"
    if password_stdin or password is not None:
        kept += " (the password given was not used)"
    if result.promoted:
        typer.echo(f"Existing user {result.user.email} promoted to superuser; {kept}.")
    elif result.newly_verified:
        typer.echo(
            f"{result.user.email} is already a superuser; its email address is now verified; "
            f"{kept}."
        )
    else:
        typer.echo(f"{result.user.email} is already a superuser; nothing changed; {kept}.")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if password.endswith("\r"):
            password = password[:-1]
        if not password:
            raise CliError("no password on standard input")
        return password
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
