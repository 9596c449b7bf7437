"""Event hooks and a custom email sender (docs/EMBEDDING.md): what each hook receives,
that the event is committed first, and that a failing hook neither aborts the request nor
leaks its message into the log."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from email.message import EmailMessage as MimeMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth import EmailMessage, EmailSender, OrgAuth, OrgRole, ResetDelivery, User
from orgauth.logs import JsonFormatter, TextFormatter
from tests.support.http import RESET_SUBJECT, read_emails
from tests.support.settings import make_settings

from .helpers import (
    API,
    NEW_PASSWORD,
    PASSWORD,
    add_member,
    create_org,
    register,
    running,
    sign_in,
    sign_up,
)

FRONTEND_URL = "https://app.example.test/"
SECRET_IN_ERROR = "smtp-password-hunter2"


@dataclass
class Recorder:
    """Collects every hook call, in order."""

    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def of(self, name: str) -> list[tuple[Any, ...]]:
        return [arguments for hook, arguments in self.calls if hook == name]

    def hook(self, name: str) -> Any:
        async def record(*arguments: Any) -> None:
            self.calls.append((name, arguments))

        return record


class Outbox:
    """A custom EmailSender: keeps messages in memory."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> None:
        self.messages.append(message)


@dataclass
class Host:
    auth: OrgAuth
    client: httpx.AsyncClient
    email_dir: Path


@pytest.fixture
async def make_host(db: AsyncEngine, database_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    """``await make_host(email_sender=None)``: a host app with orgauth installed."""
    async with AsyncExitStack() as stack:

        async def factory(email_sender: EmailSender | None = None) -> Host:
            email_dir = tmp_path / f"emails-{uuid.uuid4().hex[:6]}"
            settings = make_settings(
                database_url, tmp_path, frontend_url=FRONTEND_URL, email_file_dir=str(email_dir)
            )
            auth = OrgAuth(settings, email_sender=email_sender)
            app = FastAPI(lifespan=auth.lifespan)
            auth.install(app)
            client = await stack.enter_async_context(running(app))
            return Host(auth, client, email_dir)

        yield factory


def _emails_written(directory: Path, subject: str = RESET_SUBJECT) -> list[MimeMessage]:
    """The file backend's messages with ``subject`` (registration also sends one)."""
    return read_emails(directory, subject)


async def _request_reset(client: httpx.AsyncClient, email: str) -> httpx.Response:
    response = await client.post(f"{API}/auth/password-reset/request", json={"email": email})
    assert response.status_code == 202, response.text
    return response


# --- what each hook receives ----------------------------------------------------------------


async def test_register_login_and_password_change_hooks_get_the_user(make_host: Any) -> None:
    host = await make_host()
    recorder = Recorder()
    host.auth.hooks.on_register.append(recorder.hook("register"))
    host.auth.hooks.on_login.append(recorder.hook("login"))
    host.auth.hooks.on_password_change.append(recorder.hook("password_change"))

    user = await register(host.client)
    account = await sign_in(host.client, user["email"])
    refused = await host.client.post(
        f"{API}/auth/login", json={"email": user["email"], "password": NEW_PASSWORD}
    )
    oauth = await host.client.post(
        f"{API}/auth/login/oauth", data={"username": user["email"], "password": PASSWORD}
    )
    changed = await host.client.post(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=account.headers,
    )

    assert refused.status_code == 401
    assert oauth.status_code == 200
    assert changed.status_code == 200
    assert [name for name, _ in recorder.calls] == [
        "register",
        "login",  # the failed login calls no hook
        "login",
        "password_change",
    ]
    for _, (hooked_user,) in recorder.calls:
        assert isinstance(hooked_user, User)
        assert str(hooked_user.id) == user["id"]
        assert hooked_user.email == user["email"]


async def test_hook_runs_after_the_event_is_committed(make_host: Any, db: AsyncEngine) -> None:
    host = await make_host()
    seen_by_other_connection: list[int] = []

    async def check(user: User) -> None:
        async with db.connect() as connection:
            count = await connection.scalar(
                select(func.count()).select_from(User).where(User.id == user.id)  # type: ignore[arg-type]
            )
        seen_by_other_connection.append(int(count or 0))

    host.auth.hooks.on_register.append(check)
    await register(host.client)

    assert seen_by_other_connection == [1]


async def test_member_hooks_get_organization_user_and_role(make_host: Any) -> None:
    host = await make_host()
    recorder = Recorder()
    host.auth.hooks.on_member_added.append(recorder.hook("added"))
    host.auth.hooks.on_member_removed.append(recorder.hook("removed"))
    owner = await sign_up(host.client)
    member = await sign_up(host.client)
    leaver = await sign_up(host.client)
    org_id = await create_org(host.client, owner)

    await add_member(host.client, org_id, owner, member, "admin")
    await add_member(host.client, org_id, owner, leaver, "member")
    removed = await host.client.delete(
        f"{API}/organizations/{org_id}/members/{member.id}", headers=owner.headers
    )
    left = await host.client.delete(
        f"{API}/organizations/{org_id}/members/{leaver.id}", headers=leaver.headers
    )

    assert (removed.status_code, left.status_code) == (204, 204)
    assert recorder.of("added") == [
        (org_id, owner.id, OrgRole.OWNER),  # the creator joins as its owner
        (org_id, member.id, OrgRole.ADMIN),
        (org_id, leaver.id, OrgRole.MEMBER),
    ]
    assert recorder.of("removed") == [(org_id, member.id, None), (org_id, leaver.id, None)]


async def test_accounts_and_organizations_made_by_an_admin_call_the_hooks_too(
    make_host: Any, db: AsyncEngine
) -> None:
    host = await make_host()
    recorder = Recorder()
    host.auth.hooks.on_register.append(recorder.hook("registered"))
    host.auth.hooks.on_member_added.append(recorder.hook("added"))
    admin = await sign_up(host.client)
    async with db.begin() as connection:
        await connection.execute(update(User).where(User.id == admin.id).values(is_superuser=True))

    created = await host.client.post(
        f"{API}/admin/users",
        json={"email": "made-by-admin@example.com", "password": PASSWORD},
        headers=admin.headers,
    )
    org = await host.client.post(
        f"{API}/admin/organizations",
        json={"name": "Admin made", "owner_id": created.json()["id"]},
        headers=admin.headers,
    )

    assert created.status_code == 201, created.text
    assert org.status_code == 201, org.text
    registered = [user.email for (user,) in recorder.of("registered")]
    assert registered == [admin.email, "made-by-admin@example.com"]
    assert recorder.of("added") == [
        (uuid.UUID(org.json()["id"]), uuid.UUID(created.json()["id"]), OrgRole.OWNER)
    ]


async def test_reset_hook_takes_over_the_email(make_host: Any) -> None:
    host = await make_host()
    deliveries: list[ResetDelivery] = []

    async def deliver(delivery: ResetDelivery) -> None:
        deliveries.append(delivery)

    host.auth.hooks.on_password_reset_requested.append(deliver)
    user = await register(host.client)

    await _request_reset(host.client, user["email"])
    await _request_reset(host.client, "nobody-" + user["email"])  # unknown: no delivery

    assert len(deliveries) == 1
    delivery = deliveries[0]
    assert str(delivery.user_id) == user["id"]
    assert delivery.email == user["email"]
    assert delivery.token
    # Built from FRONTEND_URL (its trailing slash folded), never from the request's Host.
    assert delivery.reset_url == (
        f"https://app.example.test/reset-password?token={quote(delivery.token, safe='')}"
    )
    assert _emails_written(host.email_dir) == []  # orgauth did not send it itself
    confirmed = await host.client.post(
        f"{API}/auth/password-reset/confirm",
        json={"token": delivery.token, "new_password": NEW_PASSWORD},
    )
    assert confirmed.status_code == 200
    await sign_in(host.client, user["email"], NEW_PASSWORD)


async def test_without_reset_hook_the_configured_backend_sends(make_host: Any) -> None:
    host = await make_host()
    user = await register(host.client)

    await _request_reset(host.client, user["email"])

    assert len(_emails_written(host.email_dir)) == 1


# --- failing hooks ------------------------------------------------------------------------


def _failing_hook(exception: Exception) -> Any:
    async def fail(*_: Any) -> None:
        raise exception

    return fail


def _hook_failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "orgauth.hooks"]


async def test_failing_hooks_do_not_abort_the_request(
    make_host: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="orgauth")
    host = await make_host()
    recorder = Recorder()
    hooks = host.auth.hooks
    for callbacks in (
        hooks.on_register,
        hooks.on_login,
        hooks.on_password_change,
        hooks.on_member_added,
        hooks.on_member_removed,
    ):
        callbacks.append(_failing_hook(RuntimeError(SECRET_IN_ERROR)))
    hooks.on_register.append(recorder.hook("register"))  # later hooks still run

    user = await register(host.client)
    account = await sign_in(host.client, user["email"])
    other = await sign_up(host.client)
    org_id = await create_org(host.client, account)
    await add_member(host.client, org_id, account, other, "member")
    removed = await host.client.delete(
        f"{API}/organizations/{org_id}/members/{other.id}", headers=account.headers
    )
    changed = await host.client.post(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=account.headers,
    )

    assert removed.status_code == 204
    assert changed.status_code == 200
    assert len(recorder.of("register")) == 2  # both sign-ups
    failed = {getattr(r, "hook", None) for r in _hook_failures(caplog)}
    assert failed == {
        "after_register",
        "after_login",
        "after_member_added",
        "after_member_removed",
        "after_password_change",
    }


async def test_failing_hook_is_logged_by_name_and_type_without_its_message(
    make_host: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="orgauth")
    host = await make_host()
    host.auth.hooks.on_register.append(_failing_hook(ValueError(SECRET_IN_ERROR)))

    await register(host.client)

    [record] = _hook_failures(caplog)
    assert record.levelno == logging.ERROR
    assert record.hook == "after_register"  # type: ignore[attr-defined]
    assert record.error == "ValueError"  # type: ignore[attr-defined]
    assert record.exc_info is None  # no traceback, which would quote the message
    for formatted in (TextFormatter().format(record), JsonFormatter().format(record)):
        assert "after_register" in formatted
        assert "ValueError" in formatted
        assert SECRET_IN_ERROR not in formatted
    assert SECRET_IN_ERROR not in caplog.text
    assert json.loads(JsonFormatter().format(record))["logger"] == "orgauth.hooks"


async def test_failing_reset_hook_still_answers_202_and_sends_nothing(
    make_host: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="orgauth")
    host = await make_host()
    host.auth.hooks.on_password_reset_requested.append(
        _failing_hook(ConnectionError(SECRET_IN_ERROR))
    )
    user = await register(host.client)

    await _request_reset(host.client, user["email"])

    assert [getattr(r, "hook", None) for r in _hook_failures(caplog)] == [
        "password_reset_requested"
    ]
    assert _emails_written(host.email_dir) == []  # the hook owns delivery, even when failing
    assert SECRET_IN_ERROR not in caplog.text


# --- a custom email sender ------------------------------------------------------------------


async def test_custom_email_sender_receives_the_reset_email(make_host: Any) -> None:
    outbox = Outbox()
    host = await make_host(email_sender=outbox)
    user = await register(host.client)

    await _request_reset(host.client, user["email"])

    assert _emails_written(host.email_dir) == []  # not the configured file backend
    [message] = [m for m in outbox.messages if m.subject == RESET_SUBJECT]
    assert message.to == user["email"]
    assert message.subject == "Reset your password"
    links = [w for w in message.text.split() if w.startswith(FRONTEND_URL + "reset-password")]
    assert len(links) == 1
    token = unquote(links[0].split("token=", 1)[1])
    confirmed = await host.client.post(
        f"{API}/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert confirmed.status_code == 200
    assert host.auth.email_sender is outbox


async def test_the_first_superuser_created_at_startup_calls_on_register(
    db: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        database_url,
        tmp_path,
        first_superuser_email="first-admin@example.com",
        first_superuser_password=PASSWORD,
    )
    auth = OrgAuth(settings)
    recorder = Recorder()
    auth.hooks.on_register.append(recorder.hook("registered"))
    app = FastAPI(lifespan=auth.lifespan)
    auth.install(app)

    async with running(app):
        pass
    async with running(app):  # a restart finds the account: nothing is created, no call
        pass

    registered = [(user.email, user.is_superuser) for (user,) in recorder.of("registered")]
    assert registered == [("first-admin@example.com", True)]
