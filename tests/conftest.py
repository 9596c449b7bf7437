"""Shared fixtures: a fresh, migrated database per test run (SQLite, or PostgreSQL when
``ORGAUTH_TEST_DATABASE_URL`` is set), settings, apps and HTTP clients.

Each pytest(-xdist) worker gets its own database, so runs can go in parallel. Tests that
touch the database use the ``db`` fixture, which empties orgauth's tables first.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth import migrate
from orgauth.app import create_app
from orgauth.db import create_engine
from orgauth.settings import OrgAuthSettings
from tests.support.settings import TABLES_IN_DELETE_ORDER, fresh_database, make_settings

pytest_plugins = ("tests.support.fixtures",)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read the developer's environment or .env file."""
    for name in list(os.environ):
        if name.upper() in {field.upper() for field in OrgAuthSettings.model_fields}:
            monkeypatch.delenv(name, raising=False)
        if name.upper().startswith("POSTGRES_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, empty database for this test session (one per xdist worker)."""
    yield from fresh_database(tmp_path_factory, "database")


@pytest.fixture(scope="session")
def empty_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second fresh database, never migrated by the fixtures (for migration tests)."""
    yield from fresh_database(tmp_path_factory, "empty-database")


@pytest.fixture
def fresh_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A new, never-migrated database for one test (dropped afterwards)."""
    yield from fresh_database(tmp_path_factory, "fresh")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> OrgAuthSettings:
    return make_settings(database_url, tmp_path)


@pytest.fixture(scope="session")
async def migrated_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The session's database, migrated to head once."""
    settings = OrgAuthSettings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]
    engine = create_engine(settings)
    await migrate.upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def db(migrated_engine: AsyncEngine) -> AsyncEngine:
    """The migrated database with every orgauth table emptied."""
    async with migrated_engine.begin() as connection:
        for table in TABLES_IN_DELETE_ORDER:
            await connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - fixed names
    return migrated_engine


@pytest.fixture
async def app(db: AsyncEngine, settings: OrgAuthSettings) -> AsyncIterator[FastAPI]:
    """The standalone app on the test database, lifespan running."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.10", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
