"""Concurrent confirms of one emailed ``oa_ev_`` token across two real server processes
(docs/SECURITY.md).

Only meaningful on PostgreSQL, where two workers share one database: the conditional
``UPDATE … RETURNING`` claim must let exactly one request win, whichever process serves
it, for verification links and email-change links alike.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.http import (
    CHANGE_SUBJECT,
    PASSWORD,
    VERIFY_SUBJECT,
    latest_change_token,
    latest_verification_token,
    read_emails,
    unique_email,
)
from tests.support.servers import ServerFactory, server_environment, wait_for
from tests.support.settings import is_postgres_run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not is_postgres_run(),
        reason="needs PostgreSQL shared by two server processes: set ORGAUTH_TEST_DATABASE_URL",
    ),
]

API = "/api/v1"
ROUNDS = 3
REQUESTS_PER_ROUND = 20
EMAIL_WAIT_SECONDS = 30.0


@pytest.fixture
def two_servers(db: AsyncEngine, database_url: str, server_factory: ServerFactory) -> list[str]:
    """Two independent ``orgauth serve`` processes on the test database; their base URLs."""
    environment = server_environment(database_url=database_url, log_level="WARNING")
    return [server.url for server in server_factory.start(environment, count=2)]


@pytest.fixture
def email_dir(server_factory: ServerFactory) -> Path:
    """Where both servers' file backend writes (see ServerFactory.start)."""
    return server_factory.directory / "emails"


async def wait_for_email(directory: Path, subject: str, to: str) -> None:
    async def arrived() -> bool:
        return any(m["To"] == to for m in read_emails(directory, subject))

    # Emails go out after the response: give the background task a moment.
    assert await wait_for(arrived, EMAIL_WAIT_SECONDS) is not None, f"no {subject!r} to {to}"


def assert_one_winner(responses: list[httpx.Response]) -> None:
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [400] * (REQUESTS_PER_ROUND - 1), statuses
    for response in responses:
        if response.status_code == 400:
            assert response.json()["detail"]["code"] == "INVALID_VERIFICATION_TOKEN"


async def test_concurrent_verification_confirms_across_two_processes_succeed_once(
    two_servers: list[str], email_dir: Path
) -> None:
    first, second = two_servers
    limits = httpx.Limits(max_connections=REQUESTS_PER_ROUND)
    async with (
        httpx.AsyncClient(base_url=first, timeout=30.0, limits=limits) as one,
        httpx.AsyncClient(base_url=second, timeout=30.0, limits=limits) as two,
    ):
        for _ in range(ROUNDS):
            address = unique_email("race")
            registered = await one.post(
                f"{API}/auth/register", json={"email": address, "password": PASSWORD}
            )
            assert registered.status_code == 201, registered.text
            await wait_for_email(email_dir, VERIFY_SUBJECT, address)
            body = {"token": latest_verification_token(email_dir, to=address)}

            responses = await asyncio.gather(
                *(
                    (one if i % 2 else two).post(f"{API}/auth/verify-email/confirm", json=body)
                    for i in range(REQUESTS_PER_ROUND)
                )
            )

            assert_one_winner(list(responses))
            assert [r.json()["email_verified"] for r in responses if r.status_code == 200] == [True]


async def test_concurrent_email_change_confirms_across_two_processes_succeed_once(
    two_servers: list[str], email_dir: Path
) -> None:
    first, second = two_servers
    limits = httpx.Limits(max_connections=REQUESTS_PER_ROUND)
    async with (
        httpx.AsyncClient(base_url=first, timeout=30.0, limits=limits) as one,
        httpx.AsyncClient(base_url=second, timeout=30.0, limits=limits) as two,
    ):
        address = unique_email("mover")
        registered = await one.post(
            f"{API}/auth/register", json={"email": address, "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        signed_in = await two.post(
            f"{API}/auth/login", json={"email": address, "password": PASSWORD}
        )
        assert signed_in.status_code == 200, signed_in.text
        headers = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}

        for _ in range(ROUNDS):
            new = unique_email("moved")
            requested = await one.post(
                f"{API}/users/me/email",
                json={"new_email": new, "password": PASSWORD},
                headers=headers,
            )
            assert requested.status_code == 202, requested.text
            await wait_for_email(email_dir, CHANGE_SUBJECT, new)
            body = {"token": latest_change_token(email_dir, to=new)}

            # Half on the caller's route, half on the public one, spread over both servers.
            responses = await asyncio.gather(
                *(
                    (one if i % 2 else two).post(
                        f"{API}/users/me/email/confirm"
                        if i % 4 < 2
                        else f"{API}/auth/verify-email/confirm",
                        json=body,
                        headers=headers,
                    )
                    for i in range(REQUESTS_PER_ROUND)
                )
            )

            assert_one_winner(list(responses))
            me = await two.get(f"{API}/users/me", headers=headers)
            assert me.status_code == 200, me.text  # the requesting session is kept
            assert me.json()["email"] == new
