"""What ``auth.install(app, ...)`` adds to a host app, and what it leaves to the host:
the host's own security headers, a body limit it can move or turn off, and only the
routers it asked for."""

from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse

from orgauth import OrgAuth
from orgauth.security.headers import API_CSP
from tests.support.settings import make_settings

from .helpers import API, running, sign_up

HOST_CSP = "default-src 'self'; img-src https://cdn.example.com"


def host(database_url: str, tmp_path: Path, **install: object) -> FastAPI:
    auth = OrgAuth(make_settings(database_url, tmp_path))
    app = FastAPI(lifespan=auth.lifespan)

    @app.get("/page")
    async def page() -> HTMLResponse:
        return HTMLResponse(
            "<p>host page</p>",
            headers={"Content-Security-Policy": HOST_CSP, "X-Frame-Options": "SAMEORIGIN"},
        )

    @app.get("/plain")
    async def plain() -> PlainTextResponse:
        return PlainTextResponse("plain")

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    auth.install(app, **install)  # type: ignore[arg-type]
    return app


async def test_host_routes_keep_their_own_security_headers(
    db: object, database_url: str, tmp_path: Path
) -> None:
    async with running(host(database_url, tmp_path)) as client:
        own = await client.get("/page")
        plain = await client.get("/plain")
        health = await client.get("/health")

    assert own.headers["content-security-policy"] == HOST_CSP
    assert own.headers["x-frame-options"] == "SAMEORIGIN"
    assert own.headers["x-content-type-options"] == "nosniff"  # added where absent
    for response in (plain, health):
        assert response.headers["content-security-policy"] == API_CSP
        assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    ("install", "size", "status"),
    [
        ({}, 2 * 1024 * 1024, 413),  # the default: 1 MiB for the whole app
        ({"max_body_size": None}, 2 * 1024 * 1024, 200),
        ({"max_body_size": 4 * 1024 * 1024}, 2 * 1024 * 1024, 200),
        ({"max_body_size": 4 * 1024 * 1024}, 5 * 1024 * 1024, 413),
    ],
)
async def test_the_body_limit_is_the_hosts_choice(
    db: object,
    database_url: str,
    tmp_path: Path,
    install: dict[str, object],
    size: int,
    status: int,
) -> None:
    async with running(host(database_url, tmp_path, **install)) as client:
        response = await client.post("/upload", content=b"x" * size)

    assert response.status_code == status
    if status == 200:
        assert response.json() == {"size": size}


async def test_only_the_routers_asked_for_are_added(
    db: object, database_url: str, tmp_path: Path
) -> None:
    app = host(database_url, tmp_path, routers=("auth", "users"))
    async with running(app) as client:
        account = await sign_up(client)
        me = await client.get(f"{API}/users/me", headers=account.headers)
        organizations = await client.get(f"{API}/organizations/me", headers=account.headers)
        admin = await client.get(f"{API}/admin/users", headers=account.headers)
        sessions = await client.get(f"{API}/sessions/me", headers=account.headers)

    assert me.status_code == 200
    assert organizations.status_code == admin.status_code == sessions.status_code == 404
    paths = set(app.openapi()["paths"])
    assert f"{API}/auth/login" in paths
    assert not any(path.startswith(f"{API}/organizations") for path in paths)


async def test_without_the_users_router_there_is_no_profile_route(
    db: object, database_url: str, tmp_path: Path
) -> None:
    app = host(database_url, tmp_path, routers=["auth"])
    async with running(app) as client:
        account = await sign_up(client)
        me = await client.get(f"{API}/users/me", headers=account.headers)
    assert me.status_code == 404


def test_unknown_router_names_are_refused(database_url: str, tmp_path: Path) -> None:
    auth = OrgAuth(make_settings(database_url, tmp_path))
    with pytest.raises(ValueError, match=r"unknown orgauth routers \['billing'\]"):
        auth.install(FastAPI(), routers=("auth", "billing"))
    with pytest.raises(ValueError, match="unknown orgauth routers"):
        auth.build_router(routers=["nope"])


async def test_build_router_mounts_the_chosen_routers_on_a_host_router(
    db: object, database_url: str, tmp_path: Path
) -> None:
    auth = OrgAuth(make_settings(database_url, tmp_path))
    app = FastAPI(lifespan=auth.lifespan)
    app.include_router(auth.build_router(routers=["auth", "users"]))

    async with running(app) as client:
        account = await sign_up(client)
        me = await client.get(f"{API}/users/me", headers=account.headers)
        organizations = await client.get(f"{API}/organizations/me", headers=account.headers)

    assert me.status_code == 200
    assert organizations.status_code == 404
