"""Fixtures for the command-line tests: a CliRunner and migrated / unmigrated databases
named in DATABASE_URL. The CLI reads its settings from the environment, exactly as a user's
shell gives them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from .helpers import downgrade_to_base, migrate_and_empty


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A CliRunner with a wide terminal, so Rich tables and help text do not wrap."""
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("BCRYPT_ROUNDS", "4")
    return CliRunner()


@pytest.fixture
def migrated_url(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test database at head with every orgauth table empty, named in DATABASE_URL."""
    asyncio.run(migrate_and_empty(database_url))
    monkeypatch.setenv("DATABASE_URL", database_url)
    return database_url


@pytest.fixture
def unmigrated_url(empty_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database without orgauth's tables, named in DATABASE_URL (and left that way)."""
    asyncio.run(downgrade_to_base(empty_database_url))
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    yield empty_database_url
    asyncio.run(downgrade_to_base(empty_database_url))
