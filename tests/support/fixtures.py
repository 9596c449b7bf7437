"""The suite's shared fixtures (registered by tests/conftest.py for every directory)."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth.app import create_app
from tests.support.http import (
    PASSWORD,
    PEER_IP,
    ClientFactory,
    CustomApp,
    LoggedIn,
    UserFactory,
    register,
    sign_in,
    unique_email,
)
from tests.support.orgs import Account, Factory, RoledOrg
from tests.support.servers import ServerFactory, free_port
from tests.support.services import PrivatePostgres, PrivateRedis, postgres_unavailable
from tests.support.settings import make_settings

AppClient = Any  # ``async with app_client(**settings) as client``


@pytest.fixture
def make_user(client: httpx.AsyncClient) -> UserFactory:
    """Register a fresh user on the default app and log them in once."""

    async def factory(
        *,
        email_address: str | None = None,
        password: str = PASSWORD,
        user_agent: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> LoggedIn:
        address = email_address or unique_email()
        names = {k: v for k, v in (("first_name", first_name), ("last_name", last_name)) if v}
        await register(client, address, password, **names)
        return await sign_in(client, address, password, user_agent=user_agent)

    return factory


@pytest.fixture
async def make_app(
    db: AsyncEngine, database_url: str, tmp_path: Path
) -> AsyncIterator[ClientFactory]:
    """Build an app with settings overrides (lifespan running) and a client for it.

    ``await make_app(refresh_reuse_grace_seconds=30)`` -> CustomApp. Every app shares the
    test database; each gets its own email directory.
    """
    async with AsyncExitStack() as stack:

        async def factory(peer: str = PEER_IP, **overrides: Any) -> CustomApp:
            email_dir = tmp_path / f"emails-{uuid.uuid4().hex[:8]}"
            overrides.setdefault("email_file_dir", str(email_dir))
            settings = make_settings(database_url, tmp_path, **overrides)
            application = create_app(settings)
            await stack.enter_async_context(application.router.lifespan_context(application))
            transport = httpx.ASGITransport(app=application, client=(peer, 50000))
            http = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://testserver")
            )
            return CustomApp(application, http, Path(overrides["email_file_dir"]))

        yield factory


@pytest.fixture
def email_dir(tmp_path: Path) -> Path:
    """Where the default app's file backend writes (see make_settings)."""
    return tmp_path / "emails"


@pytest.fixture
def factory(db: AsyncEngine, client: httpx.AsyncClient) -> Factory:
    """A :class:`Factory` on the default app (fresh database)."""
    return Factory(db, client)


@pytest.fixture
async def roled_org(factory: Factory) -> RoledOrg:
    return await factory.roled_org()


@pytest.fixture
async def superuser(factory: Factory) -> Account:
    """A superuser signed in on the default app (is_superuser set in the database)."""
    return await factory.superuser()


@pytest.fixture
def app_client(db: AsyncEngine, database_url: str, tmp_path: Path) -> AppClient:
    """``async with app_client(**settings) as client``: an app with custom settings."""

    @asynccontextmanager
    async def factory(
        peer: str = "203.0.113.10", **overrides: Any
    ) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(make_settings(database_url, tmp_path, **overrides))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=(peer, 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                yield c

    return factory


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    factory = ServerFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started private cluster with an empty database; stopped and removed afterwards."""
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    # Not under pytest's tmp_path: its parents are private to root and postgres must
    # reach the data directory and socket.
    directory = Path(tempfile.mkdtemp(prefix="orgauth-pg-", dir="/tmp"))
    account = pwd.getpwnam("postgres")
    os.chown(directory, account.pw_uid, account.pw_gid)
    cluster = PrivatePostgres(directory, free_port())
    try:
        cluster.init()
        cluster.start()
        cluster.create_database()
        yield cluster
    finally:
        try:
            if (directory / "data" / "postmaster.pid").exists():
                cluster.stop("immediate")
        finally:
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    pytest.importorskip("redis")
    server = PrivateRedis(free_port(), tmp_path / "redis.log")
    server.start()
    try:
        yield server
    finally:
        server.kill()
