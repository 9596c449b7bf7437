"""Concurrent refreshes with one token across two real server processes (docs/SECURITY.md).

Only meaningful on PostgreSQL, where two workers share one database: the row-level claim
of the refresh token must let exactly one request win, whichever process serves it.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.http import PASSWORD, unique_email
from tests.support.servers import ServerFactory, server_environment
from tests.support.settings import is_postgres_run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not is_postgres_run(),
        reason="needs PostgreSQL shared by two server processes: set ORGAUTH_TEST_DATABASE_URL",
    ),
]

ROUNDS = 3
REQUESTS_PER_ROUND = 20


@pytest.fixture
def two_servers(db: AsyncEngine, database_url: str, server_factory: ServerFactory) -> list[str]:
    """Two independent ``orgauth serve`` processes on the test database; their base URLs."""
    environment = server_environment(database_url=database_url, log_level="WARNING")
    return [server.url for server in server_factory.start(environment, count=2)]


async def test_concurrent_refreshes_across_two_processes_succeed_exactly_once(
    two_servers: list[str],
) -> None:
    first, second = two_servers
    limits = httpx.Limits(max_connections=REQUESTS_PER_ROUND)
    async with (
        httpx.AsyncClient(base_url=first, timeout=30.0, limits=limits) as one,
        httpx.AsyncClient(base_url=second, timeout=30.0, limits=limits) as two,
    ):
        address = unique_email("race")
        registered = await one.post(
            "/api/v1/auth/register", json={"email": address, "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text

        for _ in range(ROUNDS):
            signed_in = await two.post(
                "/api/v1/auth/login", json={"email": address, "password": PASSWORD}
            )
            assert signed_in.status_code == 200, signed_in.text
            token = signed_in.json()["refresh_token"]
            body = {"refresh_token": token}

            responses = await asyncio.gather(
                *(
                    (one if i % 2 else two).post("/api/v1/auth/refresh", json=body)
                    for i in range(REQUESTS_PER_ROUND)
                )
            )

            statuses = sorted(r.status_code for r in responses)
            assert statuses == [200] + [401] * (REQUESTS_PER_ROUND - 1), statuses
            for response in responses:
                if response.status_code == 401:
                    assert response.json()["detail"]["code"] == "INVALID_REFRESH_TOKEN"
