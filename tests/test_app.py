"""The standalone app: /health, the docs switch and the first superuser (docs/CONFIGURATION.md,
docs/API.md)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

import orgauth
from orgauth.app import create_app, create_app_from_environment
from orgauth.db import create_sessionmaker
from orgauth.models import User
from orgauth.security.passwords import verify_password_sync
from orgauth.settings import OrgAuthSettings
from tests.support.settings import make_settings

PRODUCTION_SECRET = "k7Qp2Vx9Lm4Rt8Wz1Hb6Nd3Fs5Gj0Ay-Uc_EiTo"
UNREACHABLE_DATABASE = "postgresql://postgres@127.0.0.1:1/x"
STRONG_PASSWORD = "Tangerine-Orbit-Quartz-42"


@asynccontextmanager
async def running(settings: OrgAuthSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The standalone app with its lifespan running, and a client for it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def _users(engine: AsyncEngine) -> list[User]:
    async with create_sessionmaker(engine)() as session:
        return list((await session.execute(select(User))).scalars().all())


# --- /health ------------------------------------------------------------------------------


async def test_health_reports_healthy_with_version_environment_and_database_probe(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "version", "environment", "timestamp", "checks"}
    assert body["status"] == "healthy"
    assert body["version"] == orgauth.__version__
    assert body["environment"] == "development"
    database = body["checks"]["database"]
    assert database["status"] == "ok"
    assert isinstance(database["latency_ms"], int | float)
    assert not isinstance(database["latency_ms"], bool)
    assert database["latency_ms"] >= 0


async def test_health_timestamp_is_iso_8601_with_utc_offset(client: httpx.AsyncClient) -> None:
    raw = (await client.get("/health")).json()["timestamp"]

    assert raw.endswith(("Z", "+00:00"))
    stamp = datetime.fromisoformat(raw)
    assert stamp.utcoffset() == timedelta(0)


async def test_health_needs_no_authentication_and_is_outside_the_api_prefix(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/api/v1/health")).status_code == 404


async def test_health_is_503_unhealthy_when_the_database_is_unreachable(tmp_path: Path) -> None:
    async with running(make_settings(UNREACHABLE_DATABASE, tmp_path)) as client:
        response = await client.get("/health")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["version"] == orgauth.__version__
    assert body["checks"]["database"]["status"] != "ok"
    assert "127.0.0.1" not in response.text  # no connection details leak
    assert "Traceback" not in response.text


async def test_health_reports_production_environment(
    db: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        database_url,
        tmp_path,
        environment="production",
        secret_key=PRODUCTION_SECRET,
        bcrypt_rounds=12,
    )

    async with running(settings) as client:
        body = (await client.get("/health")).json()

    assert body["environment"] == "production"
    assert body["status"] == "healthy"


# --- docs --------------------------------------------------------------------------------


DOCS_PATHS = ("/docs", "/redoc", "/api/v1/openapi.json")


async def test_docs_are_served_in_development_by_default(client: httpx.AsyncClient) -> None:
    for path in DOCS_PATHS:
        response = await client.get(path)
        assert response.status_code == 200, path

    schema = (await client.get("/api/v1/openapi.json")).json()
    assert schema["info"]["version"] == orgauth.__version__
    assert "/health" in schema["paths"]


async def test_docs_are_404_when_disabled(
    db: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    async with running(make_settings(database_url, tmp_path, docs_enabled=False)) as client:
        for path in (*DOCS_PATHS, "/openapi.json", "/docs/oauth2-redirect"):
            assert (await client.get(path)).status_code == 404, path
        assert (await client.get("/health")).status_code == 200


async def test_docs_are_404_in_production_by_default(
    db: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        database_url,
        tmp_path,
        environment="production",
        secret_key=PRODUCTION_SECRET,
        bcrypt_rounds=12,
    )

    async with running(settings) as client:
        for path in DOCS_PATHS:
            assert (await client.get(path)).status_code == 404, path


async def test_docs_can_be_enabled_in_production(
    db: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        database_url,
        tmp_path,
        environment="production",
        secret_key=PRODUCTION_SECRET,
        bcrypt_rounds=12,
        docs_enabled=True,
    )

    async with running(settings) as client:
        for path in DOCS_PATHS:
            assert (await client.get(path)).status_code == 200, path


async def test_openapi_schema_follows_the_api_prefix(
    db: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    async with running(make_settings(database_url, tmp_path, api_prefix="/auth-api")) as client:
        assert (await client.get("/auth-api/openapi.json")).status_code == 200
        assert (await client.get("/api/v1/openapi.json")).status_code == 404


# --- first superuser -----------------------------------------------------------------------


async def test_first_superuser_is_created_at_startup(
    db: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        database_url,
        tmp_path,
        first_superuser_email="Root@Example.org",
        first_superuser_password=STRONG_PASSWORD,
    )

    async with running(settings):
        pass

    [user] = await _users(db)
    assert user.email == "root@example.org"
    assert user.is_superuser
    assert user.is_active
    assert user.hashed_password != STRONG_PASSWORD
    assert STRONG_PASSWORD not in user.hashed_password
    assert verify_password_sync(STRONG_PASSWORD, user.hashed_password)


async def test_first_superuser_creation_is_idempotent_and_keeps_the_password(
    db: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    first = make_settings(
        database_url,
        tmp_path,
        first_superuser_email="root@example.org",
        first_superuser_password=STRONG_PASSWORD,
    )
    second = make_settings(
        database_url,
        tmp_path,
        first_superuser_email="root@example.org",
        first_superuser_password="Another-Orbit-Quartz-77",
    )
    async with running(first):
        pass
    [created] = await _users(db)

    async with running(second):
        pass

    [after] = await _users(db)
    assert after.id == created.id
    assert after.hashed_password == created.hashed_password
    assert verify_password_sync(STRONG_PASSWORD, after.hashed_password)


async def _sign_in(client: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _root_settings(database_url: str, tmp_path: Path) -> OrgAuthSettings:
    return make_settings(
        database_url,
        tmp_path,
        first_superuser_email="root@example.org",
        first_superuser_password=STRONG_PASSWORD,
    )


def _first_superuser_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "orgauth" and "first superuser" in r.message]


async def test_first_superuser_leaves_an_existing_account_as_it_is(
    db: AsyncEngine, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with create_sessionmaker(db)() as session:
        session.add(User(email="root@example.org", hashed_password="bcrypt-sha256$kept"))
        await session.commit()
    caplog.set_level(logging.INFO, logger="orgauth")

    async with running(_root_settings(database_url, tmp_path)):
        pass

    [user] = await _users(db)
    assert not user.is_superuser
    assert user.hashed_password == "bcrypt-sha256$kept"
    [line] = _first_superuser_lines(caplog)
    assert line.levelno == logging.WARNING
    assert "not created" in line.message
    assert "not a superuser" in line.message
    assert line.user_id == str(user.id)  # type: ignore[attr-defined]


async def test_renamed_first_superuser_address_does_not_make_its_new_owner_a_superuser(
    db: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    settings = _root_settings(database_url, tmp_path)
    async with running(settings) as client:
        root = await _sign_in(client, "root@example.org", STRONG_PASSWORD)
        me = (await client.get("/api/v1/users/me", headers=root)).json()
        renamed = await client.patch(
            f"/api/v1/admin/users/{me['id']}", json={"email": "ops@example.org"}, headers=root
        )
        assert renamed.status_code == 200, renamed.text
        registered = await client.post(
            "/api/v1/auth/register",
            json={"email": "root@example.org", "password": "Newcomer-Violet-Harbor-58"},
        )
        assert registered.status_code == 201, registered.text

    async with running(settings) as client:  # the next start
        newcomer = await _sign_in(client, "root@example.org", "Newcomer-Violet-Harbor-58")
        stats = await client.get("/api/v1/admin/stats", headers=newcomer)

    assert stats.status_code == 403
    by_email = {user.email: user for user in await _users(db)}
    assert not by_email["root@example.org"].is_superuser
    assert by_email["ops@example.org"].is_superuser


async def test_demoted_first_superuser_stays_demoted_after_a_restart(
    db: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    settings = _root_settings(database_url, tmp_path)
    async with running(settings) as client:
        root = await _sign_in(client, "root@example.org", STRONG_PASSWORD)
        other = await client.post(
            "/api/v1/admin/users",
            json={"email": "ops@example.org", "password": "Second-Violet-Harbor-58"},
            headers=root,
        )
        promoted = await client.patch(
            f"/api/v1/admin/users/{other.json()['id']}", json={"is_superuser": True}, headers=root
        )
        assert promoted.status_code == 200, promoted.text
        ops = await _sign_in(client, "ops@example.org", "Second-Violet-Harbor-58")
        root_id = (await client.get("/api/v1/users/me", headers=root)).json()["id"]
        demoted = await client.patch(
            f"/api/v1/admin/users/{root_id}", json={"is_superuser": False}, headers=ops
        )
        assert demoted.status_code == 200, demoted.text

    async with running(settings) as client:  # the next start
        root = await _sign_in(client, "root@example.org", STRONG_PASSWORD)
        stats = await client.get("/api/v1/admin/stats", headers=root)

    assert stats.status_code == 403
    by_email = {user.email: user for user in await _users(db)}
    assert not by_email["root@example.org"].is_superuser


async def test_first_superuser_startup_logs_what_it_did_without_the_password(
    db: AsyncEngine, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="orgauth")
    settings = _root_settings(database_url, tmp_path)

    async with running(settings):
        pass
    created = _first_superuser_lines(caplog)
    caplog.clear()
    async with running(settings):
        pass
    left_alone = _first_superuser_lines(caplog)

    [user] = await _users(db)
    assert [(r.levelno, r.message) for r in created] == [(logging.INFO, "first superuser created")]
    [line] = left_alone
    assert line.levelno == logging.INFO
    assert line.message == (
        "first superuser not created: an account with FIRST_SUPERUSER_EMAIL exists"
    )
    for record in (*created, *left_alone):
        assert record.user_id == str(user.id)  # type: ignore[attr-defined]
        assert STRONG_PASSWORD not in str(vars(record))


async def test_workers_starting_at_once_create_one_first_superuser(
    db: AsyncEngine, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="orgauth")
    apps = [create_app(_root_settings(database_url, tmp_path)) for _ in range(3)]

    async def start_and_stop(app: FastAPI) -> None:
        async with app.router.lifespan_context(app):
            pass

    await asyncio.gather(*(start_and_stop(app) for app in apps))

    [user] = await _users(db)
    assert user.is_superuser
    assert verify_password_sync(STRONG_PASSWORD, user.hashed_password)
    messages = sorted(r.message for r in _first_superuser_lines(caplog))
    assert messages == [
        "first superuser created",
        *["first superuser not created: an account with FIRST_SUPERUSER_EMAIL exists"] * 2,
    ]


async def test_no_account_is_created_without_first_superusermake_settings(
    db: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    async with running(make_settings(database_url, tmp_path)) as client:
        assert (await client.get("/health")).status_code == 200

    async with create_sessionmaker(db)() as session:
        count = (await session.execute(select(func.count()).select_from(User))).scalar_one()
    assert count == 0


@pytest.mark.parametrize("weak", ["short", "password1234", "root@example.org1"])
async def test_weak_first_superuser_password_refuses_startup(
    db: AsyncEngine, database_url: str, tmp_path: Path, weak: str
) -> None:
    settings = make_settings(
        database_url,
        tmp_path,
        first_superuser_email="root@example.org",
        first_superuser_password=weak,
    )
    app: FastAPI = create_app(settings)

    with pytest.raises(RuntimeError) as caught:
        async with app.router.lifespan_context(app):
            pass

    message = str(caught.value)
    assert message.startswith("FIRST_SUPERUSER_PASSWORD is refused:")
    assert "\n" not in message
    assert weak not in message
    assert await _users(db) == []


# --- routing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/users/me/"),
        ("GET", "/health/"),
        ("POST", "/api/v1/auth/login/"),
        ("GET", "/api/v1/organizations/"),
        ("GET", "/api/v1/admin/users/"),
    ],
)
async def test_a_trailing_slash_is_not_found_never_a_redirect_to_the_requests_host(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, headers={"Host": "attacker.example"})

    assert response.status_code == 404
    assert "location" not in response.headers


# --- the server process -------------------------------------------------------------------


async def test_the_server_factory_freezes_the_startup_objects_once_started(
    db: AsyncEngine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(database_url, tmp_path)
    monkeypatch.setattr("orgauth.app.load_settings", lambda: settings)
    frozen: list[int] = []
    monkeypatch.setattr("orgauth.server.gc.freeze", lambda: frozen.append(1))
    app = create_app_from_environment()

    async with app.router.lifespan_context(app):
        assert frozen == [1]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            assert (await c.get("/health")).status_code == 200
    assert frozen == [1]


async def test_apps_built_by_create_app_leave_the_garbage_collector_alone(
    settings: OrgAuthSettings, monkeypatch: pytest.MonkeyPatch, db: AsyncEngine
) -> None:
    frozen: list[int] = []
    monkeypatch.setattr("orgauth.server.gc.freeze", lambda: frozen.append(1))

    async with running(settings) as client:
        assert (await client.get("/health")).status_code == 200
    assert frozen == []
