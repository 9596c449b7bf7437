"""Test settings and databases: where the suite runs (SQLite, or PostgreSQL when
``ORGAUTH_TEST_DATABASE_URL`` is set) and the settings every test app starts from."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from orgauth.settings import OrgAuthSettings

TEST_DATABASE_ENV = "ORGAUTH_TEST_DATABASE_URL"
TEST_SECRET_KEY = "test-only-signing-key-0123456789abcdefghijklmnop"
# Children first, so deleting never trips a foreign key.
TABLES_IN_DELETE_ORDER = (
    "refresh_tokens",
    "password_reset_tokens",
    "email_verification_tokens",
    "organization_invitations",
    "organization_api_keys",
    "audit_events",
    "webhook_deliveries",
    "webhook_endpoints",
    "organization_members",
    "organization_roles",
    "user_sessions",
    "organizations",
    "users",
)


def is_postgres_run() -> bool:
    return bool(os.environ.get(TEST_DATABASE_ENV))


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


def fresh_database(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[str]:
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
        # Test apps send no webhooks unless a test says so (tests/webhooks run the worker).
        "webhook_delivery_enabled": False,
    }
    values.update(overrides)
    return OrgAuthSettings(_env_file=None, **values)  # type: ignore[call-arg]
