"""Logins racing the change that should end them, across two ``orgauth serve`` processes.

A login reads the password hash, spends a bcrypt verification on it, then creates the
session. A password change, a password reset or the deletion of the account can commit on
the other process inside that window. No session minted from a password may outlive the
password's change, and a login racing the account's deletion is the generic 401, never a
500.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.servers import (
    API,
    PASSWORD,
    Server,
    ServerFactory,
    bearer,
    login,
    register,
    server_environment,
    unique_email,
)
from tests.support.settings import is_postgres_run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not is_postgres_run(),
        reason="two server processes need a shared PostgreSQL: set ORGAUTH_TEST_DATABASE_URL",
    ),
]

NEW_PASSWORD = "Velvet-canyon-Mosaic-38"
ADMIN_EMAIL = "race-admin@example.com"
ADMIN_PASSWORD = "Harbor-comet-Tundra-94"
#: Logins sent one after another while the change happens on the other process; with
#: a bcrypt cost of 10 each verification takes tens of milliseconds, so several of them
#: have read the old hash but not yet created their session when the change commits.
RACING_LOGINS = 24
LOGIN_SPACING_SECONDS = 0.01


@pytest.fixture(scope="module")
def pair(
    migrated_engine: object, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Server, Path]]:
    """Servers A and B on the (migrated) test database, and where they write emails."""
    directory = tmp_path_factory.mktemp("login-races")
    factory = ServerFactory(directory)
    environment = server_environment(
        database_url=database_url,
        bcrypt_rounds=10,
        # Small pools: the shared PostgreSQL has 100 connections for every suite running.
        db_pool_size=4,
        db_max_overflow=4,
        first_superuser_email=ADMIN_EMAIL,
        first_superuser_password=ADMIN_PASSWORD,
    )
    try:
        first, second = factory.start(environment, count=2)
        yield first, second, directory / "emails"
    finally:
        factory.stop_all()


@pytest.fixture
async def clients(
    pair: tuple[Server, Server, Path],
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    first, second, _ = pair
    async with (
        httpx.AsyncClient(base_url=first.url, timeout=60.0) as a,
        httpx.AsyncClient(base_url=second.url, timeout=60.0) as b,
    ):
        yield a, b


async def racing_logins(client: httpx.AsyncClient, address: str) -> list[httpx.Response]:
    """Start :data:`RACING_LOGINS` logins with the current password, a few ms apart."""

    async def attempt(delay: float) -> httpx.Response:
        await asyncio.sleep(delay)
        return await client.post(f"{API}/auth/login", json={"email": address, "password": PASSWORD})

    return list(
        await asyncio.gather(*(attempt(i * LOGIN_SPACING_SECONDS) for i in range(RACING_LOGINS)))
    )


async def assert_every_session_ended(
    client: httpx.AsyncClient, responses: list[httpx.Response]
) -> int:
    """Every login that succeeded has lost its session; how many succeeded."""
    succeeded = [r.json() for r in responses if r.status_code == 200]
    for tokens in succeeded:
        me = await client.get(f"{API}/users/me", headers=bearer(tokens["access_token"]))
        assert me.status_code == 401, "a session created with the old password survived"
        refreshed = await client.post(
            f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 401
    return len(succeeded)


def latest_reset_token(directory: Path, address: str) -> str:
    for path in sorted(directory.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == address:
            body = message.get_body(preferencelist=("plain",))
            assert body is not None
            for word in body.get_content().split():  # type: ignore[attr-defined]
                if "reset-password?token=" in word:
                    return parse_qs(urlsplit(word).query)["token"][0]
    raise AssertionError(f"no reset email to {address} in {directory}")


async def wait_for_reset_token(directory: Path, address: str) -> str:
    for _ in range(100):  # the email is sent after the response
        try:
            return latest_reset_token(directory, address)
        except AssertionError:
            await asyncio.sleep(0.1)
    return latest_reset_token(directory, address)


async def test_logins_racing_a_password_change_on_the_other_process_do_not_survive_it(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = clients
    address = unique_email("race-change")
    await register(a, address)
    keeper = await login(b, address)

    logins = asyncio.create_task(racing_logins(a, address))
    await asyncio.sleep(RACING_LOGINS * LOGIN_SPACING_SECONDS / 3)
    changed = await b.post(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(keeper["access_token"]),
    )
    assert changed.status_code == 200, changed.text
    responses = await logins

    assert {r.status_code for r in responses} <= {200, 401}
    await assert_every_session_ended(a, responses)
    # The session that changed the password stays; the new password works.
    assert (
        await a.get(f"{API}/users/me", headers=bearer(keeper["access_token"]))
    ).status_code == 200
    assert (
        await a.post(f"{API}/auth/login", json={"email": address, "password": NEW_PASSWORD})
    ).status_code == 200


async def test_logins_racing_a_password_reset_on_the_other_process_do_not_survive_it(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], pair: tuple[Server, Server, Path]
) -> None:
    a, b = clients
    emails = pair[2]
    address = unique_email("race-reset")
    await register(a, address)
    requested = await b.post(f"{API}/auth/password-reset/request", json={"email": address})
    assert requested.status_code == 202
    token = await wait_for_reset_token(emails, address)

    logins = asyncio.create_task(racing_logins(a, address))
    await asyncio.sleep(RACING_LOGINS * LOGIN_SPACING_SECONDS / 3)
    confirmed = await b.post(
        f"{API}/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert confirmed.status_code == 200, confirmed.text
    responses = await logins

    assert {r.status_code for r in responses} <= {200, 401}
    await assert_every_session_ended(a, responses)


async def test_logins_racing_the_deletion_of_the_account_get_the_generic_401(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = clients
    admin = bearer((await login(b, ADMIN_EMAIL, ADMIN_PASSWORD))["access_token"])
    for _ in range(3):
        address = unique_email("race-delete")
        user_id = uuid.UUID((await register(a, address))["id"])

        logins = asyncio.create_task(racing_logins(a, address))
        await asyncio.sleep(RACING_LOGINS * LOGIN_SPACING_SECONDS / 3)
        deleted = await b.delete(f"{API}/admin/users/{user_id}", headers=admin)
        assert deleted.status_code == 204, deleted.text
        responses = await logins

        assert {r.status_code for r in responses} <= {200, 401}, [
            (r.status_code, r.text) for r in responses if r.status_code not in (200, 401)
        ]
        refused = [r for r in responses if r.status_code == 401]
        assert all(r.json()["detail"]["code"] == "INVALID_CREDENTIALS" for r in refused)
        await assert_every_session_ended(a, responses)
