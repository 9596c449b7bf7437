"""Shared fixtures: a fresh, migrated database per test run (SQLite, or PostgreSQL when
``ORGAUTH_TEST_DATABASE_URL`` is set), settings, apps and HTTP clients.

Each pytest(-xdist) worker gets its own database, so runs can go in parallel. Tests that
touch the database use the ``db`` fixture, which empties orgauth's tables first.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth import migrate
from orgauth.app import create_app
from orgauth.db import create_engine
from orgauth.settings import OrgAuthSettings

TEST_DATABASE_ENV = "ORGAUTH_TEST_DATABASE_URL"
TEST_SECRET_KEY = "test-only-signing-key-0123456789abcdefghijklmnop"
# Children first, so deleting never trips a foreign key.
TABLES_IN_DELETE_ORDER = (
    "refresh_tokens",
    "password_reset_tokens",
    "organization_members",
    "user_sessions",
    "organizations",
    "users",
)


def is_postgres_run() -> bool:
    return bool(os.environ.get(TEST_DATABASE_ENV))


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read the developer's environment or .env file."""
    for name in list(os.environ):
        if name.upper() in {field.upper() for field in OrgAuthSettings.model_fields}:
            monkeypatch.delenv(name, raising=False)
        if name.upper().startswith("POSTGRES_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


async def _create_postgres_database(base_url: str) -> str:
    import asyncpg

    url = make_url(base_url)
    name = f"orgauth_test_{uuid.uuid4().hex[:12]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return url.set(drivername="postgresql+asyncpg", database=name).render_as_string(
        hide_password=False
    )


async def _drop_postgres_database(base_url: str, test_url: str) -> None:
    import asyncpg

    admin = make_url(base_url).set(drivername="postgresql").render_as_string(hide_password=False)
    name = make_url(test_url).database
    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def _fresh_database(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[str]:
    """A new empty database: a SQLite file, or a PostgreSQL database created and dropped."""
    base = os.environ.get(TEST_DATABASE_ENV)
    if not base:
        directory = tmp_path_factory.mktemp(name)
        yield f"sqlite+aiosqlite:///{directory / f'orgauth-{name}.db'}"
        return
    from orgauth.settings import normalize_database_url

    base = normalize_database_url(base)
    url = asyncio.run(_create_postgres_database(base))
    try:
        yield url
    finally:
        asyncio.run(_drop_postgres_database(base, url))


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, empty database for this test session (one per xdist worker)."""
    yield from _fresh_database(tmp_path_factory, "database")


@pytest.fixture(scope="session")
def empty_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second fresh database, never migrated by the fixtures (for migration tests)."""
    yield from _fresh_database(tmp_path_factory, "empty-database")


@pytest.fixture
def fresh_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A new, never-migrated database for one test (dropped afterwards)."""
    yield from _fresh_database(tmp_path_factory, "fresh")


def make_settings(database_url: str, tmp_path: Path, **overrides: Any) -> OrgAuthSettings:
    """Test settings: fast bcrypt, file email backend, no .env file."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_key": TEST_SECRET_KEY,
        "bcrypt_rounds": 4,
        "email_backend": "file",
        "email_file_dir": str(tmp_path / "emails"),
        "rate_limit_enabled": False,
        "password_min_length": 12,
    }
    values.update(overrides)
    return OrgAuthSettings(_env_file=None, **values)  # type: ignore[call-arg]


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
