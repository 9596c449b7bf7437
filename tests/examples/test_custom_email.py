"""examples/custom_email: a custom EmailSender receives the welcome, reset, verification and
email-change emails."""

from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.embedding.helpers import (
    API,
    NEW_PASSWORD,
    PASSWORD,
    load_example,
    point_examples_at,
    register,
    running,
    sign_in,
)


@pytest.fixture
def email_dir(tmp_path: Path) -> Path:
    return tmp_path / "emails"


@pytest.fixture
async def example(
    db: AsyncEngine,
    database_url: str,
    email_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[ModuleType, httpx.AsyncClient]]:
    point_examples_at(monkeypatch, database_url, email_dir)
    module = load_example("examples.custom_email.app")
    async with running(module.app) as client:
        yield module, client


async def test_registration_sends_a_welcome_email(
    example: tuple[ModuleType, httpx.AsyncClient],
) -> None:
    module, client = example

    user = await register(client)

    welcome, verification = module.outbox.messages  # the hook runs first, in the request
    assert welcome.to == verification.to == user["email"]
    assert welcome.subject == "Welcome to Example"
    assert verification.subject == "Confirm your Example email address"
    [link] = [word for word in verification.text.split() if word.startswith("https://")]
    assert link.startswith("https://app.example.test/verify-email?token=oa_ev_")


async def test_reset_email_goes_through_the_hook_and_the_custom_sender(
    example: tuple[ModuleType, httpx.AsyncClient], email_dir: Path
) -> None:
    module, client = example
    user = await register(client)
    module.outbox.messages.clear()

    requested = await client.post(
        f"{API}/auth/password-reset/request", json={"email": user["email"]}
    )
    unknown = await client.post(
        f"{API}/auth/password-reset/request", json={"email": "nobody@example.com"}
    )

    assert requested.status_code == unknown.status_code == 202
    assert requested.json() == unknown.json()
    [reset] = module.outbox.messages  # one message: nothing for the unknown address
    assert reset.to == user["email"]
    assert reset.subject == "Your Example password reset link"
    [link] = [word for word in reset.text.split() if word.startswith("https://")]
    assert link.startswith("https://app.example.test/reset-password?token=")
    assert module.auth.settings.email_backend == "file"
    assert list(email_dir.glob("*.eml")) == []  # noqa: ASYNC240 - orgauth itself sent nothing

    token = parse_qs(urlsplit(link).query)["token"][0]
    confirmed = await client.post(
        f"{API}/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert confirmed.status_code == 200
    await sign_in(client, user["email"], NEW_PASSWORD)


async def test_email_change_link_goes_through_the_hook_in_its_own_words(
    example: tuple[ModuleType, httpx.AsyncClient],
) -> None:
    module, client = example
    user = await register(client)
    account = await sign_in(client, user["email"])
    module.outbox.messages.clear()
    new = f"moved-{user['id'][:8]}@example.com"

    requested = await client.post(
        f"{API}/users/me/email",
        json={"new_email": new, "password": PASSWORD},
        headers=account.headers,
    )

    assert requested.status_code == 202, requested.text
    [change] = module.outbox.messages
    assert change.to == new
    assert change.subject == "Confirm your new Example email address"
    [link] = [word for word in change.text.split() if word.startswith("https://")]
    assert link.startswith("https://app.example.test/confirm-email?token=oa_ev_")
    token = parse_qs(urlsplit(link).query)["token"][0]
    confirmed = await client.post(
        f"{API}/users/me/email/confirm", json={"token": token}, headers=account.headers
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["email"] == new
    # The notice to the old address comes from orgauth, through the custom sender.
    [_, notice] = module.outbox.messages
    assert notice.to == user["email"]
    assert notice.subject == "Your email address was changed"


async def test_custom_sender_replaces_the_configured_backend(
    example: tuple[ModuleType, httpx.AsyncClient],
) -> None:
    module, _ = example

    assert module.auth.email_sender is module.outbox
