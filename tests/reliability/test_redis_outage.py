"""A Redis outage under load: rate limits fall back to per-process memory, then return.

The server keeps its rate-limit counters in a private ``redis-server`` that the test kills
(SIGKILL) while logins and ``/health`` requests keep coming. Sign-in must keep working
(no 5xx), the limits must still apply (in-memory counters in the process), the outage
must be logged, and once Redis is back on the same port the server uses it again.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.servers import (
    API,
    ServerFactory,
    forwarded,
    login,
    next_ip,
    register,
    server_environment,
    unique_email,
    wait_for,
)
from tests.support.services import PrivateRedis

pytestmark = pytest.mark.slow

LOGIN_LIMIT = 5
LOAD_SECONDS = 4.0
MAX_LOAD_REQUESTS = 400
#: The limiter retries a failed storage after 5 s (STORAGE_RETRY_SECONDS).
REDIS_RETURN_TIMEOUT_SECONDS = 20.0


async def failed_logins(client: httpx.AsyncClient, ip: str, email: str, count: int) -> list[int]:
    body = {"email": email, "password": "not-the-password-123"}
    codes = []
    for _ in range(count):
        response = await client.post(f"{API}/auth/login", json=body, headers=forwarded(ip))
        codes.append(response.status_code)
    return codes


async def test_redis_outage_falls_back_to_memory_and_recovers(
    db: AsyncEngine,
    database_url: str,
    private_redis: PrivateRedis,
    server_factory: ServerFactory,
    tmp_path: Path,
) -> None:
    env = server_environment(
        database_url=database_url,
        rate_limit_enabled="true",
        rate_limit_storage_uri=private_redis.url,
        rate_limit_login=f"{LOGIN_LIMIT}/minute",
        rate_limit_register="1000/minute",
        forwarded_allow_ips="127.0.0.1",
    )
    (server,) = server_factory.start(env)
    redis_client = private_redis.client()

    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
        email = unique_email("redis")
        await register(client, email)

        # Redis up: the limit is enforced and counted in Redis.
        codes = await failed_logins(client, next_ip(), unique_email("nobody"), LOGIN_LIMIT + 1)
        assert codes == [401] * LOGIN_LIMIT + [429]
        assert redis_client.dbsize() > 0

        # Redis dies while logins and health checks keep coming.
        private_redis.kill()
        killed = time.monotonic()
        limited_ip, limited_email = next_ip(), unique_email("nobody")
        good_ip = next_ip()
        login_codes: list[int] = []
        good_codes: list[int] = []
        health_codes: list[int] = []
        slowest = 0.0

        async def logins() -> None:
            nonlocal slowest
            body = {"email": limited_email, "password": "not-the-password-123"}
            for _ in range(MAX_LOAD_REQUESTS):
                if time.monotonic() - killed > LOAD_SECONDS:
                    return
                started = time.monotonic()
                response = await client.post(
                    f"{API}/auth/login", json=body, headers=forwarded(limited_ip)
                )
                slowest = max(slowest, time.monotonic() - started)
                login_codes.append(response.status_code)
                await asyncio.sleep(0.05)

        async def health() -> None:
            for _ in range(MAX_LOAD_REQUESTS):
                if time.monotonic() - killed > LOAD_SECONDS:
                    return
                health_codes.append((await client.get("/health")).status_code)
                await asyncio.sleep(0.05)

        async def real_user() -> None:
            for _ in range(2):  # a real user still signs in during the outage
                response = await client.post(
                    f"{API}/auth/login",
                    json={"email": email, "password": "Quartz-lantern-Orbit-71"},
                    headers=forwarded(good_ip),
                )
                good_codes.append(response.status_code)

        await asyncio.gather(logins(), health(), real_user())

        assert server.alive(), server.log()
        every_code = login_codes + health_codes + good_codes
        assert all(code < 500 for code in every_code), sorted(set(every_code))
        assert set(health_codes) == {200}
        assert good_codes == [200, 200]
        # Per-process limits still apply: LOGIN_LIMIT failures, then only 429s.
        assert len(login_codes) > LOGIN_LIMIT + 5
        assert login_codes[:LOGIN_LIMIT] == [401] * LOGIN_LIMIT, login_codes
        assert set(login_codes[LOGIN_LIMIT:]) == {429}, login_codes
        assert slowest < 5.0, f"a login took {slowest:.2f} s while Redis was down"
        assert "rate limit storage unavailable" in server.log()

        # Redis comes back (empty) on the same port: the server uses it again.
        private_redis.start()
        fresh = private_redis.client()

        async def counted_in_redis() -> bool:
            await failed_logins(client, next_ip(), unique_email("probe"), 1)
            return bool(fresh.dbsize() > 0)

        back_after = await wait_for(counted_in_redis, REDIS_RETURN_TIMEOUT_SECONDS, interval=0.25)
        assert back_after is not None, "the server never wrote to Redis again"
        # And the limit is enforced from Redis again.
        codes = await failed_logins(client, next_ip(), unique_email("nobody"), LOGIN_LIMIT + 1)
        assert codes == [401] * LOGIN_LIMIT + [429]
        assert await login(client, email, ip=next_ip())
        assert server.alive()

    print(
        f"\nredis outage: {len(login_codes)} logins + {len(health_codes)} health checks "
        f"while down, none 5xx, slowest login {slowest:.3f} s; counters back in Redis "
        f"{back_after:.1f} s after the restart"
    )
