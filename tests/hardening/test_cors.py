"""CORS: exact origins only, credentials only for them (docs/SECURITY.md)."""

from __future__ import annotations

import pytest

from tests.support.fixtures import AppClient

ALLOWED = "https://app.example.com"


def preflight(origin: str) -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }


async def test_listed_origin_gets_cors_headers_with_credentials(app_client: AppClient) -> None:
    async with app_client(backend_cors_origins=[ALLOWED]) as client:
        pre = await client.options("/api/v1/auth/login", headers=preflight(ALLOWED))
        simple = await client.get("/health", headers={"origin": ALLOWED})
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == ALLOWED
    assert pre.headers["access-control-allow-credentials"] == "true"
    methods = {m.strip() for m in pre.headers["access-control-allow-methods"].split(",")}
    assert methods == {"GET", "POST", "PATCH", "DELETE"}
    assert "*" not in pre.headers["access-control-allow-headers"]
    assert simple.headers["access-control-allow-origin"] == ALLOWED


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example.com",
        "null",
        "https://app.example.com.evil.com",  # suffix trick
        "https://evilapp.example.com",
        "http://app.example.com",  # scheme differs
        "https://app.example.com:8443",  # port differs
    ],
)
async def test_other_origins_get_no_cors_grant(app_client: AppClient, origin: str) -> None:
    async with app_client(backend_cors_origins=[ALLOWED]) as client:
        pre = await client.options("/api/v1/auth/login", headers=preflight(origin))
        simple = await client.get("/health", headers={"origin": origin})
    assert pre.status_code == 400
    assert "access-control-allow-origin" not in pre.headers
    assert "access-control-allow-origin" not in simple.headers
    assert "access-control-allow-credentials" not in simple.headers


async def test_no_origins_configured_means_no_cors(app_client: AppClient) -> None:
    async with app_client() as client:
        response = await client.get("/health", headers={"origin": ALLOWED})
    assert "access-control-allow-origin" not in response.headers


async def test_wildcard_in_development_never_allows_credentials(app_client: AppClient) -> None:
    async with app_client(backend_cors_origins=["*"]) as client:
        response = await client.get("/health", headers={"origin": "https://any.example"})
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers


async def test_refused_preflight_carries_no_credentials_grant(app_client: AppClient) -> None:
    async with app_client(backend_cors_origins=[ALLOWED]) as client:
        response = await client.options(
            "/api/v1/auth/login", headers=preflight("https://evil.example.com")
        )
    assert response.status_code == 400
    assert "access-control-allow-credentials" not in response.headers


async def test_browsers_may_not_send_an_api_key_header(app_client: AppClient) -> None:
    """API keys are for servers: a preflight asking for X-API-Key is refused, even from an
    allowed origin (docs/API.md, "API keys")."""
    headers = {**preflight(ALLOWED), "access-control-request-headers": "x-api-key"}
    async with app_client(backend_cors_origins=[ALLOWED]) as client:
        pre = await client.options("/api/v1/organizations/me", headers=headers)
    assert pre.status_code == 400
    assert "x-api-key" not in pre.headers.get("access-control-allow-headers", "").lower()
