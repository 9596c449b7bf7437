"""Helpers for the embedding and example tests: host apps driven over HTTP, nothing mocked.

A "host app" is a plain FastAPI app that embeds orgauth the way docs/EMBEDDING.md shows.
These helpers run its lifespan, sign users up and in through orgauth's real routes, and
create organizations, so each test reads as the host developer's own integration test.
"""

from __future__ import annotations

import importlib
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from alembic.config import Config
from fastapi import FastAPI
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.http import API, PASSWORD, bearer, error_code, unique_email
from tests.support.http import OTHER_PASSWORD as NEW_PASSWORD
from tests.support.settings import TEST_SECRET_KEY

ROOT = Path(__file__).resolve().parents[2]
#: The SaaS example's Alembic config: the host app's own migrations.
HOST_ALEMBIC_INI = ROOT / "examples" / "saas" / "alembic.ini"
PEER = ("203.0.113.10", 50000)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and an HTTP client for it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=PEER)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@dataclass
class Account:
    """A registered user, signed in once."""

    id: uuid.UUID
    email: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)


async def register(
    client: httpx.AsyncClient, email: str | None = None, *, prefix: str = API
) -> dict[str, Any]:
    """POST /auth/register (asserting 201); the User body."""
    response = await client.post(
        f"{prefix}/auth/register", json={"email": email or unique_email(), "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()
    return user


async def sign_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, *, prefix: str = API
) -> Account:
    """POST /auth/login (asserting 200)."""
    response = await client.post(
        f"{prefix}/auth/login", json={"email": email, "password": password}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return Account(
        id=uuid.UUID(body["user"]["id"]),
        email=email,
        access_token=body["access_token"],
        refresh_token=body["refresh_token"],
    )


async def sign_up(client: httpx.AsyncClient, *, prefix: str = API) -> Account:
    """Register a fresh user and sign them in."""
    user = await register(client, prefix=prefix)
    return await sign_in(client, user["email"], prefix=prefix)


async def create_org(client: httpx.AsyncClient, owner: Account, name: str = "Acme") -> uuid.UUID:
    """POST /organizations as ``owner`` (asserting 201); the new organization's id."""
    response = await client.post(f"{API}/organizations", json={"name": name}, headers=owner.headers)
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def add_member(
    client: httpx.AsyncClient, org_id: uuid.UUID, by: Account, member: Account, role: str
) -> None:
    """POST /organizations/{org_id}/members (asserting 201)."""
    response = await client.post(
        f"{API}/organizations/{org_id}/members",
        json={"user_id": str(member.id), "role": role},
        headers=by.headers,
    )
    assert response.status_code == 201, response.text


# --- the host's own Alembic environment (examples/saas) -------------------------------------


def host_alembic_config() -> Config:
    """The example's alembic.ini, as `alembic -c examples/saas/alembic.ini` reads it (but
    leaving the test process's logging alone)."""
    config = Config(str(HOST_ALEMBIC_INI))
    config.attributes["configure_logger"] = False
    return config


async def run_host_alembic(engine: AsyncEngine, action: Callable[[Config], Any]) -> None:
    """Run an alembic command (``command.upgrade`` ...) of the host's environment on a
    connection handed in through ``config.attributes`` (env.py's first choice)."""

    def run(connection: Connection) -> None:
        config = host_alembic_config()
        config.attributes["connection"] = connection
        action(config)

    async with engine.begin() as connection:
        await connection.run_sync(run)


# --- example apps -----------------------------------------------------------------------


def point_examples_at(monkeypatch: pytest.MonkeyPatch, database_url: str, email_dir: Path) -> None:
    """Set the environment an example's ``OrgAuthSettings()`` reads: the test database,
    a test key, fast bcrypt, the file email backend, no rate limits."""
    environment = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET_KEY,
        "BCRYPT_ROUNDS": "4",
        "EMAIL_BACKEND": "file",
        "EMAIL_FILE_DIR": str(email_dir),
        "RATE_LIMIT_ENABLED": "false",
        "FRONTEND_URL": "https://app.example.test",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)


def load_example(module: str) -> ModuleType:
    """Import an example's app module afresh, so it reads the current environment."""
    sys.modules.pop(module, None)
    return importlib.import_module(module)


__all__ = ["API", "NEW_PASSWORD", "PASSWORD", "bearer", "error_code", "unique_email"]
