"""POST /auth/password-reset/request and /confirm (docs/API.md, docs/SECURITY.md)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth.models import PasswordResetToken, User, UserSession, utcnow
from orgauth.security.tokens import hash_token
from tests.support.http import (
    API,
    OTHER_PASSWORD,
    PASSWORD,
    RESET_SUBJECT,
    ClientFactory,
    ResponseStartMarker,
    UserFactory,
    assert_error,
    assert_session_alive,
    assert_session_dead,
    bearer,
    execute,
    fetch,
    latest_reset_token,
    login,
    plain_text,
    read_emails,
    register,
    reset_links,
    sign_in,
    token_from_link,
    unique_email,
)

REQUEST = f"{API}/auth/password-reset/request"
CONFIRM = f"{API}/auth/password-reset/confirm"
NEW_PASSWORD = "Saffron-glacier-Tundra-64"


async def request_reset(
    client: httpx.AsyncClient, email_address: str, **kwargs: object
) -> httpx.Response:
    return await client.post(REQUEST, json={"email": email_address}, **kwargs)  # type: ignore[arg-type]


async def confirm_reset(
    client: httpx.AsyncClient, token: str, new_password: str = NEW_PASSWORD
) -> httpx.Response:
    return await client.post(CONFIRM, json={"token": token, "new_password": new_password})


async def issue_reset_token(client: httpx.AsyncClient, email_address: str, email_dir: Path) -> str:
    response = await request_reset(client, email_address)
    assert response.status_code == 202
    return latest_reset_token(email_dir)


async def test_request_answers_identically_for_known_unknown_and_inactive(
    client: httpx.AsyncClient, make_user: UserFactory, db: AsyncEngine, email_dir: Path
) -> None:
    known = await make_user()
    inactive = await make_user()
    await execute(db, update(User).where(User.id == inactive.user_id).values(is_active=False))

    responses = [
        await request_reset(client, known.email),
        await request_reset(client, unique_email()),
        await request_reset(client, inactive.email),
        await request_reset(client, "not-an-email"),
        await request_reset(client, known.email.upper()),
    ]

    for response in responses:
        assert response.status_code == 202
        assert response.json() == responses[0].json()
        assert set(response.json()) == {"message"}
    recipients = [message["To"] for message in read_emails(email_dir, RESET_SUBJECT)]
    assert recipients == [known.email, known.email]


async def test_request_sends_one_email_with_frontend_link_not_request_host(
    make_app: ClientFactory, db: AsyncEngine
) -> None:
    custom = await make_app(frontend_url="https://app.example.org/")
    client = custom.client
    address = unique_email()
    await register(client, address)

    response = await request_reset(
        client,
        address,
        headers={
            "Host": "evil.example.net",
            "X-Forwarded-Host": "evil.example.net",
            "Origin": "https://evil.example.net",
        },
    )

    assert response.status_code == 202
    messages = read_emails(custom.email_dir, RESET_SUBJECT)
    assert len(messages) == 1
    message = messages[0]
    assert message["To"] == address
    links = reset_links(message)
    assert len(links) == 1
    assert links[0].startswith("https://app.example.org/reset-password?token=")
    assert "evil" not in message.as_string()
    assert "testserver" not in plain_text(message)
    token = token_from_link(links[0])
    assert len(token.removeprefix("oa_pr_")) >= 22  # at least 128 bits of base64url
    rows = await fetch(db, select(PasswordResetToken.token_hash))
    assert [row[0] for row in rows] == [hash_token(token)]


async def test_confirm_sets_the_password_and_revokes_every_session(
    client: httpx.AsyncClient, make_user: UserFactory, db: AsyncEngine, email_dir: Path
) -> None:
    first = await make_user()
    second = await sign_in(client, first.email)
    stranger = await make_user()
    token = await issue_reset_token(client, first.email, email_dir)

    response = await confirm_reset(client, token)

    assert response.status_code == 200
    assert set(response.json()) == {"message"}
    assert NEW_PASSWORD not in response.text
    await assert_session_dead(client, first)
    await assert_session_dead(client, second)
    await assert_session_alive(client, stranger)
    rows = await fetch(db, select(UserSession).where(UserSession.user_id == first.user_id))
    assert {row.revoked_reason for row in rows} == {"password_reset"}
    assert_error(await login(client, first.email, PASSWORD), 401, "INVALID_CREDENTIALS")
    assert (await login(client, first.email, NEW_PASSWORD)).status_code == 200


async def test_reset_token_works_only_once(
    client: httpx.AsyncClient, make_user: UserFactory, email_dir: Path
) -> None:
    session = await make_user()
    token = await issue_reset_token(client, session.email, email_dir)
    assert (await confirm_reset(client, token)).status_code == 200

    second = await confirm_reset(client, token, OTHER_PASSWORD)

    assert_error(second, 400, "INVALID_RESET_TOKEN")
    assert (await login(client, session.email, NEW_PASSWORD)).status_code == 200
    assert_error(await login(client, session.email, OTHER_PASSWORD), 401, "INVALID_CREDENTIALS")


async def test_expired_reset_token_is_refused(
    client: httpx.AsyncClient, make_user: UserFactory, db: AsyncEngine, email_dir: Path
) -> None:
    session = await make_user()
    token = await issue_reset_token(client, session.email, email_dir)
    await execute(
        db,
        update(PasswordResetToken)
        .where(PasswordResetToken.token_hash == hash_token(token))
        .values(expires_at=utcnow() - timedelta(seconds=1)),
    )

    assert_error(await confirm_reset(client, token), 400, "INVALID_RESET_TOKEN")
    assert (await login(client, session.email, PASSWORD)).status_code == 200


async def test_reset_token_expires_after_configured_minutes(
    make_app: ClientFactory, db: AsyncEngine
) -> None:
    custom = await make_app(password_reset_expire_minutes=30)
    address = unique_email()
    await register(custom.client, address)
    before = utcnow()

    token = await issue_reset_token(custom.client, address, custom.email_dir)

    rows = await fetch(
        db,
        select(PasswordResetToken).where(PasswordResetToken.token_hash == hash_token(token)),
    )
    assert before + timedelta(minutes=30) <= rows[0].expires_at
    assert rows[0].expires_at <= utcnow() + timedelta(minutes=30)


async def test_newer_request_invalidates_older_token(
    client: httpx.AsyncClient, make_user: UserFactory, email_dir: Path
) -> None:
    session = await make_user()
    older = await issue_reset_token(client, session.email, email_dir)
    newer = await issue_reset_token(client, session.email, email_dir)
    assert older != newer

    assert_error(await confirm_reset(client, older), 400, "INVALID_RESET_TOKEN")
    assert (await confirm_reset(client, newer)).status_code == 200


async def test_password_change_invalidates_outstanding_reset_token(
    client: httpx.AsyncClient, make_user: UserFactory, email_dir: Path
) -> None:
    session = await make_user()
    token = await issue_reset_token(client, session.email, email_dir)
    changed = await client.post(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": OTHER_PASSWORD},
        headers=bearer(session.access_token),
    )
    assert changed.status_code == 200

    assert_error(await confirm_reset(client, token), 400, "INVALID_RESET_TOKEN")
    assert (await login(client, session.email, OTHER_PASSWORD)).status_code == 200


async def test_reset_token_issued_before_a_password_change_is_refused_even_if_unused(
    client: httpx.AsyncClient, make_user: UserFactory, db: AsyncEngine, email_dir: Path
) -> None:
    session = await make_user()
    token = await issue_reset_token(client, session.email, email_dir)
    # A password written by another path (admin, CLI) that forgot to kill reset tokens.
    await execute(
        db,
        update(User)
        .where(User.id == session.user_id)
        .values(password_changed_at=utcnow() + timedelta(seconds=1)),
    )

    assert_error(await confirm_reset(client, token), 400, "INVALID_RESET_TOKEN")


@pytest.mark.parametrize("weak", ["short", "password1234", "x" * 129])
async def test_weak_new_password_is_422_and_token_stays_usable(
    client: httpx.AsyncClient, make_user: UserFactory, email_dir: Path, weak: str
) -> None:
    session = await make_user()
    token = await issue_reset_token(client, session.email, email_dir)

    response = await confirm_reset(client, token, weak)

    assert_error(response, 422, "WEAK_PASSWORD")
    await assert_session_alive(client, session)
    assert (await confirm_reset(client, token)).status_code == 200


async def test_new_password_built_from_identity_is_refused(
    client: httpx.AsyncClient, make_user: UserFactory, email_dir: Path
) -> None:
    session = await make_user(
        email_address="ada.lovelace@example.com", first_name="Ada", last_name="Lovelace"
    )
    token = await issue_reset_token(client, session.email, email_dir)

    assert_error(await confirm_reset(client, token, "ada.lovelace2024"), 422, "WEAK_PASSWORD")


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "oa_pr_" + "Zq3" * 15,
        "oa_pr_",
        "oa_rt_" + "Zq3" * 15,
        "oa_pr_" + "A" * 300,
        "' OR 1=1 --",
    ],
)
async def test_garbage_reset_token_is_refused(
    client: httpx.AsyncClient, make_user: UserFactory, token: str
) -> None:
    session = await make_user()

    assert_error(await confirm_reset(client, token), 400, "INVALID_RESET_TOKEN")
    await assert_session_alive(client, session)


async def test_refresh_token_is_not_a_reset_token(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    session = await make_user()

    assert_error(await confirm_reset(client, session.refresh_token), 400, "INVALID_RESET_TOKEN")
    await assert_session_alive(client, session)


async def test_reset_token_of_deactivated_user_is_refused(
    client: httpx.AsyncClient, make_user: UserFactory, db: AsyncEngine, email_dir: Path
) -> None:
    session = await make_user()
    token = await issue_reset_token(client, session.email, email_dir)
    await execute(db, update(User).where(User.id == session.user_id).values(is_active=False))

    assert_error(await confirm_reset(client, token), 400, "INVALID_RESET_TOKEN")


@pytest.mark.parametrize(
    "body",
    [
        {"token": "oa_pr_x"},
        {"new_password": NEW_PASSWORD},
        {"token": "", "new_password": NEW_PASSWORD},
        {"token": "oa_pr_x", "new_password": NEW_PASSWORD, "email": "a@example.com"},
    ],
)
async def test_confirm_malformed_body_is_422_without_echo(
    client: httpx.AsyncClient, body: dict[str, str]
) -> None:
    response = await client.post(CONFIRM, json=body)

    assert response.status_code == 422
    assert NEW_PASSWORD not in response.text


async def test_raw_reset_token_never_reaches_the_logs(
    client: httpx.AsyncClient,
    make_user: UserFactory,
    email_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="orgauth")
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    session = await make_user()

    token = await issue_reset_token(client, session.email, email_dir)
    assert_error(await confirm_reset(client, token, "short"), 422, "WEAK_PASSWORD")
    assert (await confirm_reset(client, token)).status_code == 200
    assert_error(await confirm_reset(client, token), 400, "INVALID_RESET_TOKEN")

    assert any(r.name == "orgauth.audit" for r in caplog.records)
    secret_part = token.removeprefix("oa_pr_")
    for record in caplog.records:
        text = record.getMessage() + " " + " ".join(str(v) for v in vars(record).values())
        assert secret_part not in text, record.name
        assert NEW_PASSWORD not in text, record.name


async def test_concurrent_confirms_with_one_token_succeed_exactly_once(
    client: httpx.AsyncClient, make_user: UserFactory, email_dir: Path
) -> None:
    session = await make_user()
    token = await issue_reset_token(client, session.email, email_dir)
    candidates = [NEW_PASSWORD, OTHER_PASSWORD] * 3

    responses = await asyncio.gather(
        *(confirm_reset(client, token, password) for password in candidates)
    )

    winners = [i for i, r in enumerate(responses) if r.status_code == 200]
    assert len(winners) == 1, [r.status_code for r in responses]
    for response in responses:
        if response.status_code != 200:
            assert_error(response, 400, "INVALID_RESET_TOKEN")
    chosen = candidates[winners[0]]
    loser = OTHER_PASSWORD if chosen == NEW_PASSWORD else NEW_PASSWORD
    assert (await login(client, session.email, chosen)).status_code == 200
    assert_error(await login(client, session.email, loser), 401, "INVALID_CREDENTIALS")


async def test_request_does_the_same_work_for_known_and_unknown_emails_before_answering(
    app: Any, make_user: UserFactory, email_dir: Path
) -> None:
    user = await make_user()
    marker = ResponseStartMarker(app)
    transport = httpx.ASGITransport(app=marker, client=("203.0.113.10", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        seen: dict[str, tuple[list[str], list[str]]] = {}
        for name, address in (("known", user.email), ("unknown", unique_email("nobody"))):
            response = await request_reset(client, address)
            assert response.status_code == 202
            seen[name] = (marker.before_response, marker.after_response)

    # Nothing that depends on the address happens before the answer is sent...
    assert seen["known"][0] == seen["unknown"][0] == []
    # ...it happens afterwards: the lookup for both, the token only for the account.
    assert any("INSERT INTO password_reset_tokens" in s for s in seen["known"][1])
    assert not any("password_reset_tokens" in s for s in seen["unknown"][1])
    assert len(read_emails(email_dir, RESET_SUBJECT)) == 1


async def test_reset_emails_to_one_account_are_limited_whatever_the_client_address(
    make_app: ClientFactory, make_user: UserFactory
) -> None:
    custom = await make_app(
        rate_limit_enabled=True,
        rate_limit_password_reset="2/hour",
        forwarded_allow_ips="203.0.113.10",
    )
    await register(custom.client, (address := unique_email("flooded")))
    for n in range(5):  # five requests from five addresses behind the trusted proxy
        response = await request_reset(
            custom.client, address, headers={"X-Forwarded-For": f"198.51.100.{n + 1}"}
        )
        assert response.status_code == 202

    assert len(read_emails(custom.email_dir, RESET_SUBJECT)) == 2


async def test_email_change_by_an_admin_kills_outstanding_reset_links(
    make_app: ClientFactory, db: AsyncEngine
) -> None:
    admin_email = unique_email("admin")
    custom = await make_app(
        first_superuser_email=admin_email, first_superuser_password=OTHER_PASSWORD
    )
    user = await register(custom.client, (old_address := unique_email("old")))
    token = await issue_reset_token(custom.client, old_address, custom.email_dir)
    admin = await sign_in(custom.client, admin_email, OTHER_PASSWORD)

    changed = await custom.client.patch(
        f"{API}/admin/users/{user['id']}",
        json={"email": unique_email("new")},
        headers=admin.headers,
    )
    assert changed.status_code == 200, changed.text

    assert_error(await confirm_reset(custom.client, token), 400, "INVALID_RESET_TOKEN")
    assert (await login(custom.client, old_address)).status_code == 401


async def test_no_token_is_stored_for_an_address_the_account_no_longer_has(
    app: Any, make_user: UserFactory, db: AsyncEngine
) -> None:
    """The reset request's last check, under the row lock: between the lookup and the token
    the account's address changed (or it was deactivated), so nothing is issued."""
    from orgauth.services.auth import _issue_reset_token

    user = await make_user()
    auth = app.state.orgauth
    async with auth.sessionmaker() as session:
        token = await _issue_reset_token(
            session, auth.context, user_id=user.user_id, email="someone-else@example.com"
        )
    assert token is None
    assert await fetch(db, select(PasswordResetToken)) == []


async def test_a_failing_email_backend_is_logged_without_the_token(
    make_app: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    custom = await make_app(email_backend="smtp", smtp_host="127.0.0.1", smtp_port=1)
    await register(custom.client, (address := unique_email("unmailable")))

    with caplog.at_level(logging.ERROR, logger="orgauth.email"):
        response = await request_reset(custom.client, address)

    assert response.status_code == 202
    failures = [r for r in caplog.records if r.getMessage() == "password reset email failed"]
    assert len(failures) == 1
    tokens = await fetch(custom.app.state.orgauth.engine, select(PasswordResetToken))
    assert len(tokens) == 1
    assert "oa_pr_" not in caplog.text
