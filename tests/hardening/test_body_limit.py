"""Request bodies over 1 MiB are refused with 413, declared or chunked (docs/SECURITY.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from tests.support.fixtures import AppClient

LIMIT = 1024 * 1024


async def test_declared_oversized_body_is_refused(app_client: AppClient) -> None:
    async with app_client() as client:
        response = await client.post(
            "/api/v1/auth/login",
            content=b"x" * (LIMIT + 1),
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["detail"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_chunked_oversized_body_is_refused(app_client: AppClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(12):
            yield b" " * 100_000

    async with app_client() as client:
        response = await client.post(
            "/api/v1/auth/login", content=chunks(), headers={"content-type": "application/json"}
        )
    assert response.status_code == 413
    assert response.json()["detail"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_chunked_body_under_the_limit_reaches_the_route(app_client: AppClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"email": "nobody@example.com",'
        yield b' "password": "' + b"p" * 1000 + b'"}'

    async with app_client() as client:
        response = await client.post(
            "/api/v1/auth/login", content=chunks(), headers={"content-type": "application/json"}
        )
    assert response.status_code == 401
    assert response.json()["detail"]["code"] == "INVALID_CREDENTIALS"


async def test_body_at_the_limit_is_not_refused_by_size(app_client: AppClient) -> None:
    async with app_client() as client:
        response = await client.post(
            "/api/v1/auth/login",
            content=b" " * LIMIT,
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 422  # parsed (and refused as invalid JSON), not 413
