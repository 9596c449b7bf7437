"""Two OrgAuth instances with different settings in one process (STYLE: nothing global).

Instance A uses the test database (SQLite or PostgreSQL), instance B its own SQLite file;
each has its own SECRET_KEY and API_PREFIX and runs on its own app.
"""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth import OrgAuth, User, migrate
from orgauth.db import create_engine
from tests.support.settings import make_settings

from .helpers import PASSWORD, bearer, error_code, register, running, sign_in

PREFIX_A = "/auth-a"
PREFIX_B = "/identity/v2"
KEY_A = "instance-a-signing-key-0123456789abcdefghijklmn"
KEY_B = "instance-b-signing-key-9876543210zyxwvutsrqponm"


@dataclass
class Instance:
    auth: OrgAuth
    app: FastAPI
    client: httpx.AsyncClient
    prefix: str


async def _migrated_sqlite(path: Path) -> str:
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(make_settings(url, path.parent))
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    return url


def _host(auth: OrgAuth) -> FastAPI:
    app = FastAPI(lifespan=auth.lifespan)
    auth.install(app)
    return app


@pytest.fixture
async def instances(
    db: AsyncEngine, database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Instance, Instance]]:
    url_b = await _migrated_sqlite(tmp_path / "second.db")
    auth_a = OrgAuth(
        make_settings(database_url, tmp_path / "a", secret_key=KEY_A, api_prefix=PREFIX_A)
    )
    auth_b = OrgAuth(make_settings(url_b, tmp_path / "b", secret_key=KEY_B, api_prefix=PREFIX_B))
    app_a, app_b = _host(auth_a), _host(auth_b)
    async with AsyncExitStack() as stack:
        client_a = await stack.enter_async_context(running(app_a))
        client_b = await stack.enter_async_context(running(app_b))
        yield (
            Instance(auth_a, app_a, client_a, PREFIX_A),
            Instance(auth_b, app_b, client_b, PREFIX_B),
        )


async def test_each_instance_serves_only_its_own_prefix(
    instances: tuple[Instance, Instance],
) -> None:
    a, b = instances

    a_on_a = await a.client.post(f"{PREFIX_A}/auth/login", json={})
    b_on_a = await a.client.post(f"{PREFIX_B}/auth/login", json={})
    default_on_a = await a.client.post("/api/v1/auth/login", json={})
    b_on_b = await b.client.post(f"{PREFIX_B}/auth/login", json={})
    a_on_b = await b.client.post(f"{PREFIX_A}/auth/login", json={})

    assert a_on_a.status_code == 422  # the route exists (and wants a body)
    assert b_on_b.status_code == 422
    assert b_on_a.status_code == 404
    assert default_on_a.status_code == 404
    assert a_on_b.status_code == 404


async def test_openapi_token_url_follows_each_prefix(instances: tuple[Instance, Instance]) -> None:
    a, b = instances

    def token_url(app: FastAPI) -> str:
        scheme = app.openapi()["components"]["securitySchemes"]["OrgAuthBearer"]
        url: str = scheme["flows"]["password"]["tokenUrl"]
        return url

    assert token_url(a.app) == f"{PREFIX_A}/auth/login/oauth"
    assert token_url(b.app) == f"{PREFIX_B}/auth/login/oauth"


async def test_token_of_one_instance_is_refused_by_the_other(
    instances: tuple[Instance, Instance],
) -> None:
    a, b = instances
    user = await register(a.client, prefix=PREFIX_A)
    account = await sign_in(a.client, user["email"], prefix=PREFIX_A)

    on_a = await a.client.get(f"{PREFIX_A}/users/me", headers=account.headers)
    on_b = await b.client.get(f"{PREFIX_B}/users/me", headers=account.headers)

    assert on_a.status_code == 200
    assert (on_b.status_code, error_code(on_b)) == (401, "INVALID_TOKEN")


async def test_accounts_live_in_separate_databases(instances: tuple[Instance, Instance]) -> None:
    a, b = instances
    user = await register(a.client, prefix=PREFIX_A)

    login_on_b = await b.client.post(
        f"{PREFIX_B}/auth/login", json={"email": user["email"], "password": PASSWORD}
    )
    # The same email is free on B, and B's user is a different one.
    user_on_b = await register(b.client, user["email"], prefix=PREFIX_B)

    assert (login_on_b.status_code, error_code(login_on_b)) == (401, "INVALID_CREDENTIALS")
    assert user_on_b["id"] != user["id"]


async def test_hooks_settings_and_resources_are_per_instance(
    instances: tuple[Instance, Instance],
) -> None:
    a, b = instances
    registered_on_a: list[str] = []

    async def remember(user: User) -> None:
        registered_on_a.append(user.email)

    a.auth.hooks.on_register.append(remember)
    user_b = await register(b.client, prefix=PREFIX_B)
    user_a = await register(a.client, prefix=PREFIX_A)

    assert registered_on_a == [user_a["email"]]
    assert b.auth.hooks.on_register == []
    assert a.auth.engine is not b.auth.engine
    assert a.auth.sessionmaker is not b.auth.sessionmaker
    assert a.auth.rate_limiter is not b.auth.rate_limiter
    assert a.auth.access_tokens is not b.auth.access_tokens
    assert a.app.state.orgauth is a.auth
    assert b.app.state.orgauth is b.auth
    assert user_b["email"] != user_a["email"]


async def test_stopping_one_instance_leaves_the_other_running(
    db: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    url_b = await _migrated_sqlite(tmp_path / "second.db")
    auth_a = OrgAuth(make_settings(database_url, tmp_path / "a", secret_key=KEY_A))
    auth_b = OrgAuth(make_settings(url_b, tmp_path / "b", secret_key=KEY_B))
    app_a, app_b = _host(auth_a), _host(auth_b)

    async with running(app_b) as client_b:
        async with running(app_a) as client_a:
            assert (await client_a.get("/health")).status_code == 200
        user = await register(client_b)
        account = await sign_in(client_b, user["email"])
        me = await client_b.get("/api/v1/users/me", headers=bearer(account.access_token))

    assert me.status_code == 200


async def test_same_database_different_keys_still_refuses_foreign_tokens(
    db: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    """The session row exists in the shared database, but the signature does not verify."""
    auth_a = OrgAuth(make_settings(database_url, tmp_path / "a", secret_key=KEY_A))
    auth_b = OrgAuth(make_settings(database_url, tmp_path / "b", secret_key=KEY_B))

    async with running(_host(auth_a)) as client_a, running(_host(auth_b)) as client_b:
        user = await register(client_a)
        account = await sign_in(client_a, user["email"])
        on_a = await client_a.get("/api/v1/users/me", headers=account.headers)
        on_b = await client_b.get("/api/v1/users/me", headers=account.headers)
        # The same credentials sign in on B (shared database) with B's own token.
        account_b = await sign_in(client_b, user["email"])
        b_token_on_a = await client_a.get("/api/v1/users/me", headers=account_b.headers)

    assert on_a.status_code == 200
    assert (on_b.status_code, error_code(on_b)) == (401, "INVALID_TOKEN")
    assert (b_token_on_a.status_code, error_code(b_token_on_a)) == (401, "INVALID_TOKEN")
