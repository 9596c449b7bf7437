"""Developer sessions: ``nox`` runs lint, type checks and the tests on SQLite and PostgreSQL.

nox -s tests            # both databases
nox -s "tests(sqlite)"  # one of them
nox -s lint typecheck
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TEST_COMMAND = ("python", "-m", "pytest", "-n", "2", "-p", "no:cacheprovider")


@nox.session
@nox.parametrize("database", ["sqlite", "postgres"], ids=["sqlite", "postgres"])
def tests(session: nox.Session, database: str) -> None:
    """The test suite on SQLite or on PostgreSQL (ORGAUTH_TEST_DATABASE_URL)."""
    session.install("-e", ".[dev]")
    if database == "postgres":
        url = os.environ.get("ORGAUTH_TEST_DATABASE_URL") or DEFAULT_POSTGRES_URL
    else:
        url = ""  # an empty value means SQLite, even when the shell exports a URL
    session.run(*TEST_COMMAND, *session.posargs, env={"ORGAUTH_TEST_DATABASE_URL": url})


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("-e", ".[dev]")
    session.run("ruff", "check", "src", "tests")
    session.run("ruff", "format", "--check", "src", "tests")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package (configured in pyproject.toml)."""
    session.install("-e", ".[dev]")
    session.run("mypy")
