"""An app embedding orgauth on a database nobody migrated: a clear setup error naming
``orgauth migrate apply`` at startup, in ``/health`` and on every route — never an outage."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import jwt
import pytest
from fastapi import FastAPI

from orgauth import OrgAuth, migrate
from orgauth.db import create_engine
from tests.support.settings import TEST_SECRET_KEY, make_settings

from .helpers import API, error_code, running, sign_up

ADVICE = "orgauth migrate apply"


def forged_access_token() -> str:
    """A valid signature over a session that cannot exist (the tables do not)."""
    now = int(time.time())
    claims = {
        "iss": "orgauth",
        "aud": "orgauth",
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 600,
    }
    return jwt.encode(claims, TEST_SECRET_KEY, algorithm="HS256", headers={"typ": "at+jwt"})


def host_app(database_url: str, tmp_path: Path) -> tuple[FastAPI, OrgAuth]:
    auth = OrgAuth(make_settings(database_url, tmp_path))
    app = FastAPI(lifespan=auth.lifespan)
    auth.install(app)
    return app, auth


async def test_startup_logs_what_to_do_and_requests_are_not_an_outage(
    fresh_database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = host_app(fresh_database_url, tmp_path)
    with caplog.at_level(logging.INFO, logger="orgauth"):
        async with running(app) as client:
            startup = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
            login = await client.post(
                f"{API}/auth/login", json={"email": "a@example.com", "password": "x" * 12}
            )
            me = await client.get(
                f"{API}/users/me", headers={"Authorization": f"Bearer {forged_access_token()}"}
            )
            health = await client.get("/health")

    assert any(ADVICE in line and "no orgauth tables" in line for line in startup), startup
    for response in (login, me):
        assert response.status_code == 500, response.text
        assert error_code(response) == "DATABASE_NOT_MIGRATED"
        assert "retry-after" not in response.headers
    logged = [r.getMessage() for r in caplog.records if r.name == "orgauth.errors"]
    assert any(ADVICE in line for line in logged), logged
    assert not any("database unavailable" in line for line in logged), logged

    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["database"]["status"] == "ok"
    migrations = body["checks"]["migrations"]
    assert migrations["status"] == "error"
    assert migrations["current"] is None
    assert migrations["latest"] == migrate.head_revision()
    assert ADVICE in migrations["error"]


async def test_migrating_while_running_heals_health_and_routes(
    fresh_database_url: str, tmp_path: Path
) -> None:
    app, auth = host_app(fresh_database_url, tmp_path)
    async with running(app) as client:
        assert (await client.get("/health")).status_code == 503
        engine = create_engine(auth.settings)
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()

        health = await client.get("/health")
        account = await sign_up(client)
        me = await client.get(f"{API}/users/me", headers=account.headers)

    assert health.status_code == 200, health.text
    migrations = health.json()["checks"]["migrations"]
    assert migrations["status"] == "ok"
    assert migrations["current"] == migrations["latest"] == migrate.head_revision()
    assert me.status_code == 200


async def test_an_older_schema_is_reported_with_its_revision(
    fresh_database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(fresh_database_url, tmp_path)
    engine = create_engine(settings)
    revisions = [r.revision for r in migrate.list_revisions()]  # newest first
    if len(revisions) < 2:
        pytest.skip("one bundled revision only")
    try:
        await migrate.upgrade(engine, revisions[1])
    finally:
        await engine.dispose()
    app, _ = host_app(fresh_database_url, tmp_path)

    with caplog.at_level(logging.ERROR, logger="orgauth"):
        async with running(app) as client:
            health = await client.get("/health")

    assert health.status_code == 503
    assert health.json()["checks"]["migrations"]["current"] == revisions[1]
    assert any(revisions[1] in r.getMessage() and ADVICE in r.getMessage() for r in caplog.records)
