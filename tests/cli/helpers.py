"""Helpers for the command-line tests: invoking ``orgauth.cli.app`` in-process, running the
installed ``orgauth`` console script, and reading the database behind the CLI's back."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select, text
from sqlalchemy.engine import Row
from sqlmodel import SQLModel
from typer.testing import CliRunner, Result

from orgauth import migrate
from orgauth.cli import app
from orgauth.db import create_engine, create_sessionmaker
from orgauth.settings import OrgAuthSettings
from tests.support.settings import TABLES_IN_DELETE_ORDER

M = TypeVar("M", bound=SQLModel)

#: The console script installed next to the interpreter running the tests.
ORGAUTH = Path(sys.executable).with_name("orgauth")
#: Strong for the password policy and unrelated to the test emails.
STRONG_PASSWORD = "Tangerine-Orbit-Quartz-42"
#: A strong production key (no placeholder words, 40 characters).
PRODUCTION_SECRET = "k7Qp2Vx9Lm4Rt8Wz1Hb6Nd3Fs5Gj0Ay-Uc_EiTo"
#: Nothing listens there: connections are refused at once.
UNREACHABLE_DATABASE = "postgresql://postgres@127.0.0.1:1/x"


async def _on(url: str, statements: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Row[Any]]:
    engine = create_engine(OrgAuthSettings(_env_file=None, database_url=url))  # type: ignore[call-arg]
    rows: list[Row[Any]] = []
    try:
        async with engine.begin() as connection:
            for sql, params in statements:
                result = await connection.execute(text(sql), dict(params))
                if result.returns_rows:
                    rows = list(result.all())
    finally:
        await engine.dispose()
    return rows


def sql(url: str, statement: str, **params: Any) -> list[Row[Any]]:
    """Run one SQL statement on the database at ``url`` (its own engine and event loop)."""
    return asyncio.run(_on(url, [(statement, params)]))


async def migrate_and_empty(url: str) -> None:
    engine = create_engine(OrgAuthSettings(_env_file=None, database_url=url))  # type: ignore[call-arg]
    try:
        await migrate.upgrade(engine)
        async with engine.begin() as connection:
            for table in TABLES_IN_DELETE_ORDER:
                await connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - fixed names
    finally:
        await engine.dispose()


async def downgrade_to_base(url: str) -> None:
    engine = create_engine(OrgAuthSettings(_env_file=None, database_url=url))  # type: ignore[call-arg]
    try:
        await migrate.downgrade(engine, "base")
    finally:
        await engine.dispose()


def current_revision(url: str) -> str | None:
    async def read() -> str | None:
        engine = create_engine(OrgAuthSettings(_env_file=None, database_url=url))  # type: ignore[call-arg]
        try:
            return await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def invoke(
    runner: CliRunner, *args: str, input: str | None = None, env: Mapping[str, str] | None = None
) -> Result:
    return runner.invoke(app, list(args), input=input, env=dict(env or {}))


def error_line(result: Result) -> str:
    """The single error line a failed command printed on stderr (asserting there is one)."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    return lines[0]


def run_orgauth(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``orgauth`` console script as a user would."""
    full_env = {**os.environ, "COLUMNS": "200", "BCRYPT_ROUNDS": "4", **(env or {})}
    return subprocess.run(
        [str(ORGAUTH), *args],
        cwd=cwd,
        env=full_env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def subprocess_error_line(completed: subprocess.CompletedProcess[str]) -> str:
    assert completed.returncode != 0, completed.stdout
    assert "Traceback" not in completed.stderr + completed.stdout
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("Error: "), lines[0]
    return lines[0]


def add_rows(url: str, *rows: SQLModel) -> None:
    """Store ORM rows in order (parents first) on the database at ``url``."""

    async def work() -> None:
        engine = create_engine(OrgAuthSettings(_env_file=None, database_url=url))  # type: ignore[call-arg]
        try:
            async with create_sessionmaker(engine)() as session:
                for row in rows:
                    session.add(row)
                    await session.flush()
                await session.commit()
        finally:
            await engine.dispose()

    asyncio.run(work())


def fetch_all(url: str, model: type[M]) -> list[M]:
    """Every row of ``model``'s table, read through the ORM."""

    async def work() -> list[M]:
        engine = create_engine(OrgAuthSettings(_env_file=None, database_url=url))  # type: ignore[call-arg]
        try:
            async with create_sessionmaker(engine)() as session:
                return list((await session.execute(select(model))).scalars().all())
        finally:
            await engine.dispose()

    return asyncio.run(work())
