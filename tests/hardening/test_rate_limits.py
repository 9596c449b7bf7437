"""Rate limits per client IP and per account (docs/CONFIGURATION.md, docs/SECURITY.md), in
memory and on Redis."""

from __future__ import annotations

import logging
import os
import socket
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from orgauth.security.ratelimit import RateLimiter
from orgauth.settings import OrgAuthSettings
from tests.support.fixtures import AppClient
from tests.support.servers import ServerFactory, server_environment

REDIS_URL = os.environ.get("ORGAUTH_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
LOGIN = "/api/v1/auth/login"


def _redis_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def _login_body(email: str = "nobody@example.com") -> dict[str, str]:
    return {"email": email, "password": "wrong-password-123"}


async def test_login_is_limited_per_ip_with_retry_after(app_client: AppClient) -> None:
    async with app_client(rate_limit_enabled=True, rate_limit_login="3/minute") as client:
        statuses = [
            (await client.post(LOGIN, json=_login_body(f"u{i}@example.com"))).status_code
            for i in range(4)
        ]
        limited = await client.post(LOGIN, json=_login_body("other@example.com"))
    assert statuses == [401, 401, 401, 429]
    assert limited.status_code == 429
    assert limited.json()["detail"]["code"] == "RATE_LIMITED"
    assert 0 < int(limited.headers["retry-after"]) <= 60


async def test_per_account_limit_ignores_case_and_applies_from_any_ip(
    app_client: AppClient,
) -> None:
    settings = {"rate_limit_enabled": True, "rate_limit_login": "2/minute"}
    async with app_client(**settings) as client:
        transport = client._transport
        app = transport.app  # type: ignore[attr-defined]
        import httpx

        first = await client.post(LOGIN, json=_login_body("Victim@Example.com"))
        other_ip = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("198.51.100.9", 1)),
            base_url="http://testserver",
        )
        async with other_ip:
            second = await other_ip.post(LOGIN, json=_login_body("victim@example.com"))
            third = await other_ip.post(LOGIN, json=_login_body("VICTIM@example.com"))
    assert [first.status_code, second.status_code, third.status_code] == [401, 401, 429]


@pytest.mark.parametrize(
    ("path", "setting", "body"),
    [
        (
            "/api/v1/auth/register",
            "rate_limit_register",
            {"email": "x@example.com", "password": "p"},
        ),
        ("/api/v1/auth/refresh", "rate_limit_refresh", {"refresh_token": "oa_rt_nope"}),
        ("/api/v1/auth/password-reset/request", "rate_limit_password_reset", {"email": "a@b.co"}),
    ],
)
async def test_sensitive_routes_are_limited_per_ip(
    app_client: AppClient, path: str, setting: str, body: dict[str, str]
) -> None:
    async with app_client(rate_limit_enabled=True, **{setting: "2/minute"}) as client:
        codes = [(await client.post(path, json=body)).status_code for _ in range(3)]
    assert codes[2] == 429
    assert codes[0] != 429


async def test_spoofed_forwarded_for_does_not_reset_the_limit(app_client: AppClient) -> None:
    async with app_client(rate_limit_enabled=True, rate_limit_login="2/minute") as client:
        codes = [
            (
                await client.post(
                    LOGIN,
                    json=_login_body(f"s{i}@example.com"),
                    headers={"x-forwarded-for": f"10.0.0.{i}"},
                )
            ).status_code
            for i in range(3)
        ]
    assert codes == [401, 401, 429]


async def test_trusted_proxy_forwarded_for_is_the_limited_client(app_client: AppClient) -> None:
    async with app_client(
        rate_limit_enabled=True,
        rate_limit_login="1/minute",
        forwarded_allow_ips=["203.0.113.10"],
    ) as client:
        codes = [
            (
                await client.post(
                    LOGIN,
                    json=_login_body(f"t{i}@example.com"),
                    headers={"x-forwarded-for": f"192.0.2.{i}"},
                )
            ).status_code
            for i in range(3)
        ]
    assert codes == [401, 401, 401]  # three distinct clients behind the proxy


async def test_forwarded_for_lines_forged_by_the_client_do_not_reset_the_limit(
    app_client: AppClient,
) -> None:
    async with app_client(
        rate_limit_enabled=True,
        rate_limit_login="2/minute",
        forwarded_allow_ips=["203.0.113.10"],
    ) as client:
        codes = [
            (
                await client.post(
                    LOGIN,
                    json=_login_body(f"f{i}@example.com"),
                    # A fresh forged line each time; the proxy's own line names one client.
                    headers=[("x-forwarded-for", f"10.9.0.{i}"), ("x-forwarded-for", "192.0.2.50")],
                )
            ).status_code
            for i in range(3)
        ]
    assert codes == [401, 401, 429]


async def test_disabled_limits_never_answer_429(app_client: AppClient) -> None:
    async with app_client(rate_limit_enabled=False, rate_limit_login="1/minute") as client:
        codes = [
            (await client.post(LOGIN, json=_login_body(f"d{i}@example.com"))).status_code
            for i in range(4)
        ]
    assert 429 not in codes


@pytest.mark.skipif(not _redis_available(), reason="Redis is not running on 127.0.0.1:6379")
async def test_redis_storage_is_shared_between_limiters(tmp_path: Path) -> None:
    namespace = f"test-{uuid.uuid4().hex}"
    settings = OrgAuthSettings(  # type: ignore[call-arg]
        _env_file=None, rate_limit_storage_uri=REDIS_URL, database_url="sqlite:///x.db"
    )
    from limits import parse_many

    items = parse_many("3/minute")
    one, two = (
        RateLimiter(settings, namespace=namespace),
        RateLimiter(settings, namespace=namespace),
    )
    await one.hit("login", items, "1.2.3.4")
    await two.hit("login", items, "1.2.3.4")
    await one.hit("login", items, "1.2.3.4")
    from orgauth.security.ratelimit import RateLimitedError

    with pytest.raises(RateLimitedError):
        await two.hit("login", items, "1.2.3.4")


async def test_unreachable_redis_falls_back_to_memory_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = OrgAuthSettings(  # type: ignore[call-arg]
        _env_file=None,
        rate_limit_storage_uri="redis://127.0.0.1:1/0",
        database_url="sqlite:///x.db",
    )
    from limits import parse_many

    from orgauth.security.ratelimit import RateLimitedError

    limiter = RateLimiter(settings)
    items = parse_many("2/minute")
    with caplog.at_level(logging.ERROR, logger="orgauth.ratelimit"):
        await limiter.hit("login", items, "k")  # Redis fails: counted in memory
        await limiter.hit("login", items, "k")
        with pytest.raises(RateLimitedError):
            await limiter.hit("login", items, "k")
    assert any("storage unavailable" in r.getMessage() for r in caplog.records)


# --- two real server processes sharing one Redis --------------------------------------


@pytest.fixture
def two_servers(database_url: str, server_factory: ServerFactory) -> list[str]:
    """Two ``orgauth serve`` processes sharing Redis database 15 (the tests' own)."""
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    environment = server_environment(
        database_url=database_url,
        rate_limit_enabled="true",
        rate_limit_storage_uri=REDIS_URL,
        rate_limit_login="4/minute",
        log_level="WARNING",
    )
    return [server.url for server in server_factory.start(environment, count=2)]


def _post_status(url: str, body: bytes) -> int:
    request = urllib.request.Request(  # noqa: S310 - loopback
        url, data=body, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@pytest.mark.slow
@pytest.mark.skipif(not _redis_available(), reason="Redis is not running on 127.0.0.1:6379")
def test_two_server_processes_enforce_one_combined_limit(two_servers: list[str]) -> None:
    import json

    email = f"shared-{uuid.uuid4().hex}@example.com"
    body = json.dumps(_login_body(email)).encode()
    codes = [_post_status(two_servers[i % 2] + LOGIN, body) for i in range(6)]
    # 4/minute in total across both processes, not 4 each.
    assert codes[:4] == [401, 401, 401, 401]
    assert codes[4:] == [429, 429]
