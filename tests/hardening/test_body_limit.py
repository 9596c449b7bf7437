"""Request bodies over 1 MiB are refused with 413, declared or chunked (docs/SECURITY.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from orgauth.app import create_app
from orgauth.settings import OrgAuthSettings
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


async def _call(
    app: object, headers: list[tuple[bytes, bytes]], messages: list[dict[str, object]]
) -> list[dict[str, object]]:
    """One raw ASGI request to ``app``; the messages it sent back."""
    sent: list[dict[str, object]] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/auth/login",
        "raw_path": b"/api/v1/auth/login",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"t"), *headers],
        "client": ("203.0.113.10", 5000),
        "server": ("t", 80),
    }
    incoming = list(messages)

    async def receive() -> dict[str, object]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[operator]
    return sent


async def test_an_unreadable_content_length_is_refused_as_too_large(
    db: object, settings: OrgAuthSettings
) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        sent = await _call(app, [(b"content-length", b"12abc")], [])
    assert sent[0]["status"] == 413


async def test_a_client_that_leaves_mid_body_gets_no_answer_and_nothing_runs(
    db: object, settings: OrgAuthSettings
) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        sent = await _call(
            app, [], [{"type": "http.request", "body": b'{"email"', "more_body": True}]
        )
    assert sent == []  # the disconnect ends the request before the app sees a body
