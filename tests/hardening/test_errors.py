"""Error bodies: orgauth's shape everywhere, no internals in a 500 (docs/API.md Errors)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth.app import create_app
from orgauth.models import utcnow
from tests.support.fixtures import AppClient
from tests.support.settings import make_settings


async def test_unknown_route_and_wrong_method_use_the_error_body(app_client: AppClient) -> None:
    async with app_client() as client:
        missing = await client.get("/api/v1/nothing-here")
        wrong_method = await client.put("/api/v1/auth/login")
    assert missing.status_code == 404
    assert missing.json() == {"detail": {"code": "NOT_FOUND", "message": "Not found."}}
    assert wrong_method.status_code == 405
    assert wrong_method.json()["detail"]["code"] == "METHOD_NOT_ALLOWED"


async def test_unauthenticated_requests_get_bearer_challenge(app_client: AppClient) -> None:
    async with app_client() as client:
        response = await client.get("/api/v1/users/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"]["code"] == "NOT_AUTHENTICATED"


async def test_unexpected_exception_is_a_generic_500_with_security_headers(
    db: AsyncEngine, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_settings(database_url, tmp_path))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail: /etc/passwd SELECT * FROM users")

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            with caplog.at_level(logging.ERROR, logger="orgauth.errors"):
                response = await client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {
        "detail": {"code": "INTERNAL_ERROR", "message": "An unexpected error occurred."}
    }
    assert "secret detail" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" in response.headers
    assert any("secret detail" in (r.exc_text or "") for r in caplog.records)


async def _resource_failing_on_teardown() -> AsyncIterator[str]:
    yield "ok"
    raise RuntimeError("teardown failed: connection stuck")


async def test_failure_in_teardown_after_a_complete_response_is_logged_not_raised(
    db: AsyncEngine, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A clean-up failure after the response (e.g. a broken connection's rollback) must not
    make the server drop the keep-alive connection the client is about to reuse."""
    app = create_app(make_settings(database_url, tmp_path))

    @app.get("/teardown")
    async def teardown(
        value: Annotated[str, Depends(_resource_failing_on_teardown)],
    ) -> dict[str, str]:
        return {"value": value}

    async with app.router.lifespan_context(app):
        # raise_app_exceptions=True: an exception escaping the app fails this request.
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            with caplog.at_level(logging.ERROR, logger="orgauth.errors"):
                response = await client.get("/teardown")
    assert response.status_code == 200
    assert response.json() == {"value": "ok"}
    assert any("connection stuck" in (r.exc_text or "") for r in caplog.records)


async def test_a_database_error_that_is_not_an_outage_is_a_generic_500(
    db: AsyncEngine, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A constraint violation that reaches the handlers (say, from a host route) is a bug to
    log, answered with the generic 500: not a 503 telling clients to retry."""
    from sqlalchemy import text

    app = create_app(make_settings(database_url, tmp_path))
    auth = app.state.orgauth

    @app.post("/duplicate")
    async def duplicate() -> None:
        async with auth.engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO organizations (id, name, slug, created_at, updated_at) "
                    "VALUES (:id, 'A', 'same-slug', :now, :now)"
                ),
                [{"id": uuid.uuid4(), "now": utcnow()} for _ in range(2)],
            )

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            with caplog.at_level(logging.ERROR, logger="orgauth.errors"):
                response = await client.post("/duplicate")

    assert response.status_code == 500
    assert response.json()["detail"]["code"] == "INTERNAL_ERROR"
    assert "same-slug" not in response.text
    assert "retry-after" not in response.headers
    assert any(r.getMessage() == "unhandled error" for r in caplog.records)
