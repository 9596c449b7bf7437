"""Email change: POST /users/me/email and /users/me/email/confirm, and change tokens
redeemed on /auth/verify-email/confirm (docs/API.md, docs/SECURITY.md)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth import VerificationDelivery
from orgauth.models import EmailVerificationToken, User, UserSession, utcnow
from orgauth.security.tokens import hash_token
from tests.support.http import (
    API,
    CHANGE_SUBJECT,
    CHANGED_SUBJECT,
    OTHER_PASSWORD,
    PASSWORD,
    USER_KEYS,
    ClientFactory,
    LoggedIn,
    ResponseStartMarker,
    assert_error,
    assert_session_alive,
    assert_session_dead,
    change_links,
    execute,
    fetch,
    latest_change_token,
    latest_reset_token,
    latest_verification_token,
    login,
    plain_text,
    read_emails,
    register,
    sign_in,
    unique_email,
)

REQUESTED = "A confirmation link has been sent to the new address."


async def request_change(
    client: httpx.AsyncClient,
    session: LoggedIn,
    new_email: str,
    password: str | None = PASSWORD,
    **kwargs: Any,
) -> httpx.Response:
    body: dict[str, Any] = {"new_email": new_email}
    if password is not None:
        body["password"] = password
    headers = {**session.headers, **kwargs.pop("headers", {})}
    return await client.post(f"{API}/users/me/email", json=body, headers=headers, **kwargs)


async def confirm_mine(client: httpx.AsyncClient, session: LoggedIn, token: str) -> httpx.Response:
    return await client.post(
        f"{API}/users/me/email/confirm", json={"token": token}, headers=session.headers
    )


async def confirm_public(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(f"{API}/auth/verify-email/confirm", json={"token": token})


async def account(client: httpx.AsyncClient, prefix: str = "user") -> LoggedIn:
    address = unique_email(prefix)
    await register(client, address)
    return await sign_in(client, address)


async def stored_user(engine: AsyncEngine, user_id: uuid.UUID) -> Any:
    [row] = await fetch(engine, select(User).where(User.id == user_id))
    return row


async def change_rows(engine: AsyncEngine) -> list[Any]:
    statement = select(EmailVerificationToken).where(EmailVerificationToken.purpose == "change")
    return list(await fetch(engine, statement))


async def session_row(engine: AsyncEngine, session_id: uuid.UUID) -> Any:
    [row] = await fetch(engine, select(UserSession).where(UserSession.id == session_id))
    return row


def notices(directory: Path) -> list[Any]:
    return read_emails(directory, CHANGED_SUBJECT)


# --- the flow ----------------------------------------------------------------------------


async def test_change_end_to_end_keeps_the_requesting_and_calling_sessions(
    make_app: ClientFactory, db: AsyncEngine
) -> None:
    custom = await make_app(frontend_url="https://app.example.org/")
    client = custom.client
    old = unique_email("old")
    await register(client, old)
    requesting = await sign_in(client, old)
    other = await sign_in(client, old)
    caller = await sign_in(client, old)
    new = unique_email("new")

    response = await request_change(client, requesting, new.upper())

    assert response.status_code == 202, response.text
    assert response.json() == {"message": REQUESTED}
    [message] = read_emails(custom.email_dir, CHANGE_SUBJECT)
    assert message["To"] == new
    token = latest_change_token(custom.email_dir)
    assert token.startswith("oa_ev_")
    assert change_links(message) == [
        f"https://app.example.org/confirm-email?token={quote(token, safe='')}"
    ]

    confirmed = await confirm_mine(client, caller, token)

    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    assert set(body) == USER_KEYS
    assert body["email"] == new
    assert body["email_verified"] is True
    stored = await stored_user(db, requesting.user_id)
    assert stored.email == new
    assert stored.email_verified_at is not None
    await assert_session_alive(client, requesting)
    await assert_session_alive(client, caller)
    await assert_session_dead(client, other)
    assert (await session_row(db, other.session_id)).revoked_reason == "email_changed"
    # The old address hears of it, with no way back in.
    [notice] = notices(custom.email_dir)
    assert notice["To"] == old
    text = plain_text(notice)
    assert new in text
    assert "http" not in text
    assert "token" not in notice.as_string()
    assert "oa_ev_" not in notice.as_string()
    # Sign-in follows the address.
    assert_error(await login(client, old), 401, "INVALID_CREDENTIALS")
    assert (await login(client, new)).status_code == 200


async def test_nothing_changes_before_the_confirmation(
    client: httpx.AsyncClient, db: AsyncEngine, email_dir: Path
) -> None:
    session = await account(client, "waiting")
    other = await sign_in(client, session.email)
    new = unique_email("new")

    assert (await request_change(client, session, new)).status_code == 202

    stored = await stored_user(db, session.user_id)
    assert stored.email == session.email
    assert stored.email_verified_at is None
    await assert_session_alive(client, other)
    [row] = await change_rows(db)
    assert row.email == new
    assert row.user_id == session.user_id
    assert row.session_id == session.session_id
    assert row.used_at is None
    assert row.token_hash == hash_token(latest_change_token(email_dir))
    assert row.expires_at - row.created_at == timedelta(hours=48)
    assert notices(email_dir) == []
    assert (await login(client, session.email)).status_code == 200


async def test_a_change_token_works_on_the_public_route_keeping_the_requesting_session(
    client: httpx.AsyncClient, db: AsyncEngine, email_dir: Path
) -> None:
    requesting = await account(client)
    other = await sign_in(client, requesting.email)
    new = unique_email("new")
    await request_change(client, requesting, new)

    response = await confirm_public(client, latest_change_token(email_dir))

    assert response.status_code == 200, response.text
    assert response.json()["email"] == new
    assert response.json()["email_verified"] is True
    await assert_session_alive(client, requesting)
    await assert_session_dead(client, other)
    assert [m["To"] for m in notices(email_dir)] == [requesting.email]


async def test_a_change_kills_every_outstanding_link_of_the_account(
    client: httpx.AsyncClient, db: AsyncEngine, email_dir: Path
) -> None:
    session = await account(client)
    verification = latest_verification_token(email_dir)
    await client.post(f"{API}/auth/password-reset/request", json={"email": session.email})
    reset = latest_reset_token(email_dir)
    await request_change(client, session, unique_email("new"))

    assert (await confirm_mine(client, session, latest_change_token(email_dir))).status_code == 200

    assert_error(await confirm_public(client, verification), 400, "INVALID_VERIFICATION_TOKEN")
    reset_response = await client.post(
        f"{API}/auth/password-reset/confirm", json={"token": reset, "new_password": OTHER_PASSWORD}
    )
    assert_error(reset_response, 400, "INVALID_RESET_TOKEN")
    unused = await fetch(
        db, select(EmailVerificationToken.id).where(EmailVerificationToken.used_at.is_(None))
    )
    assert list(unused) == []


async def test_a_newer_request_supersedes_the_older_link(
    client: httpx.AsyncClient, db: AsyncEngine, email_dir: Path
) -> None:
    session = await account(client)
    await request_change(client, session, unique_email("first"))
    first = latest_change_token(email_dir)
    second_address = unique_email("second")
    await request_change(client, session, second_address)
    second = latest_change_token(email_dir)

    assert_error(await confirm_mine(client, session, first), 400, "INVALID_VERIFICATION_TOKEN")
    response = await confirm_mine(client, session, second)
    assert response.status_code == 200
    assert response.json()["email"] == second_address


# --- refusals at the request -------------------------------------------------------------


async def test_a_taken_address_gets_the_same_answer_and_no_link(
    client: httpx.AsyncClient, db: AsyncEngine, email_dir: Path
) -> None:
    session = await account(client)
    taken = (await account(client, "taken")).email
    await request_change(client, session, unique_email("pending"))
    pending = latest_change_token(email_dir)
    sent_before = len(read_emails(email_dir, CHANGE_SUBJECT))

    free = await request_change(client, session, unique_email("free"))
    to_taken = await request_change(client, session, taken)
    to_taken_upper = await request_change(client, session, taken.upper())

    for response in (to_taken, to_taken_upper):
        assert response.status_code == free.status_code == 202
        assert response.content == free.content
        assert response.headers.get("content-length") == free.headers.get("content-length")
    assert len(read_emails(email_dir, CHANGE_SUBJECT)) == sent_before + 1
    assert all(m["To"] != taken for m in read_emails(email_dir, CHANGE_SUBJECT))
    assert [row.email for row in await change_rows(db) if row.email == taken] == []
    # A request, even for a taken address, supersedes the older links: otherwise whether
    # the older link still works would tell whether the address is taken.
    assert_error(await confirm_mine(client, session, pending), 400, "INVALID_VERIFICATION_TOKEN")
    assert all(row.used_at is not None for row in await change_rows(db))


async def test_nothing_about_the_new_address_is_looked_up_before_the_answer(
    app: Any, client: httpx.AsyncClient, email_dir: Path
) -> None:
    session = await account(client)
    taken = (await account(client, "taken")).email
    marker = ResponseStartMarker(app)
    transport = httpx.ASGITransport(app=marker, client=("203.0.113.10", 50000))
    seen: dict[str, tuple[list[str], list[str]]] = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as probe:
        for name, address in (("free", unique_email("free")), ("taken", taken)):
            response = await request_change(probe, session, address)
            assert response.status_code == 202
            seen[name] = (marker.before_response, marker.after_response)

    # Before the answer: only the caller's own session check, the same for both...
    assert seen["free"][0] == seen["taken"][0]
    assert not any("email_verification_tokens" in s for s in seen["free"][0])
    # ...and afterwards the same statements, but the token only for the free address.
    assert any("INSERT INTO email_verification_tokens" in s for s in seen["free"][1])
    assert not any("INSERT INTO email_verification_tokens" in s for s in seen["taken"][1])
    assert len(read_emails(email_dir, CHANGE_SUBJECT)) == 1


async def test_the_current_address_is_unchanged(client: httpx.AsyncClient, db: AsyncEngine) -> None:
    session = await account(client)

    for address in (session.email, session.email.upper(), f"  {session.email} "):
        assert_error(await request_change(client, session, address), 422, "EMAIL_UNCHANGED")
    assert await change_rows(db) == []


@pytest.mark.parametrize("password", [OTHER_PASSWORD, None, ""])
async def test_a_wrong_or_missing_password_is_refused(
    client: httpx.AsyncClient, db: AsyncEngine, email_dir: Path, password: str | None
) -> None:
    session = await account(client)
    new = unique_email("new")

    response = await request_change(client, session, new, password=password)

    assert_error(response, 400, "INVALID_PASSWORD")
    assert await change_rows(db) == []
    assert read_emails(email_dir, CHANGE_SUBJECT) == []
    if password:
        assert password not in response.text


async def test_null_password_counts_as_missing(client: httpx.AsyncClient) -> None:
    session = await account(client)
    response = await client.post(
        f"{API}/users/me/email",
        json={"new_email": unique_email(), "password": None},
        headers=session.headers,
    )
    assert_error(response, 400, "INVALID_PASSWORD")


@pytest.mark.parametrize(
    "body",
    [
        {"new_email": "not-an-email", "password": PASSWORD},
        {"new_email": "a b@example.com", "password": PASSWORD},
        {"new_email": "x" * 330 + "@example.com", "password": PASSWORD},
        {"new_email": "", "password": PASSWORD},
        {"password": PASSWORD},
        {"new_email": "a@example.com", "password": PASSWORD, "is_superuser": True},
        {"new_email": "a@example.com", "password": "p" * 1025},
        {"new_email": ["a@example.com"], "password": PASSWORD},
    ],
)
async def test_malformed_bodies_are_field_errors(
    client: httpx.AsyncClient, db: AsyncEngine, body: dict[str, Any]
) -> None:
    session = await account(client)

    response = await client.post(f"{API}/users/me/email", json=body, headers=session.headers)

    assert response.status_code == 422, response.text
    assert PASSWORD not in response.text
    assert await change_rows(db) == []


async def test_the_routes_need_a_signed_in_user(client: httpx.AsyncClient) -> None:
    request = await client.post(
        f"{API}/users/me/email", json={"new_email": unique_email(), "password": PASSWORD}
    )
    confirm = await client.post(f"{API}/users/me/email/confirm", json={"token": "oa_ev_x"})
    assert_error(request, 401, "NOT_AUTHENTICATED")
    assert_error(confirm, 401, "NOT_AUTHENTICATED")


# --- refusals at the confirmation --------------------------------------------------------


async def test_a_token_of_another_user_is_refused_and_not_spent(
    client: httpx.AsyncClient, db: AsyncEngine, email_dir: Path
) -> None:
    owner = await account(client, "owner")
    intruder = await account(client, "intruder")
    new = unique_email("new")
    await request_change(client, owner, new)
    token = latest_change_token(email_dir)

    assert_error(await confirm_mine(client, intruder, token), 400, "INVALID_VERIFICATION_TOKEN")

    assert (await stored_user(db, intruder.user_id)).email == intruder.email
    assert (await stored_user(db, owner.user_id)).email == owner.email
    await assert_session_alive(client, intruder)
    response = await confirm_mine(client, owner, token)
    assert response.status_code == 200
    assert response.json()["email"] == new


async def test_a_replayed_token_is_refused_on_either_route(
    client: httpx.AsyncClient, email_dir: Path
) -> None:
    session = await account(client)
    await request_change(client, session, unique_email("new"))
    token = latest_change_token(email_dir)
    assert (await confirm_mine(client, session, token)).status_code == 200

    assert_error(await confirm_mine(client, session, token), 400, "INVALID_VERIFICATION_TOKEN")
    assert_error(await confirm_public(client, token), 400, "INVALID_VERIFICATION_TOKEN")


async def test_a_verify_token_is_not_an_email_change(
    client: httpx.AsyncClient, db: AsyncEngine, email_dir: Path
) -> None:
    session = await account(client)
    verification = latest_verification_token(email_dir)

    refused = await confirm_mine(client, session, verification)

    assert_error(refused, 400, "INVALID_VERIFICATION_TOKEN")
    # Not spent: it still verifies the address on its own route.
    verified = await confirm_public(client, verification)
    assert verified.status_code == 200
    assert verified.json()["email"] == session.email
    assert verified.json()["email_verified"] is True


@pytest.mark.parametrize("token", ["oa_ev_", "oa_ev_" + "A" * 43, "oa_pr_" + "A" * 43, "x"])
async def test_unknown_or_foreign_tokens_are_refused(client: httpx.AsyncClient, token: str) -> None:
    session = await account(client)
    assert_error(await confirm_mine(client, session, token), 400, "INVALID_VERIFICATION_TOKEN")


async def test_an_expired_change_token_is_refused(
    client: httpx.AsyncClient, db: AsyncEngine, email_dir: Path
) -> None:
    session = await account(client)
    await request_change(client, session, unique_email("new"))
    token = latest_change_token(email_dir)
    await execute(
        db,
        update(EmailVerificationToken).values(expires_at=utcnow() - timedelta(seconds=1)),
    )

    assert_error(await confirm_mine(client, session, token), 400, "INVALID_VERIFICATION_TOKEN")
    assert_error(await confirm_public(client, token), 400, "INVALID_VERIFICATION_TOKEN")
    assert (await stored_user(db, session.user_id)).email == session.email


async def test_a_change_token_of_a_deactivated_account_is_refused(
    client: httpx.AsyncClient, db: AsyncEngine, email_dir: Path
) -> None:
    session = await account(client)
    await request_change(client, session, unique_email("new"))
    token = latest_change_token(email_dir)
    await execute(db, update(User).where(User.id == session.user_id).values(is_active=False))

    assert_error(await confirm_public(client, token), 400, "INVALID_VERIFICATION_TOKEN")
    assert (await stored_user(db, session.user_id)).email == session.email
    [row] = await change_rows(db)
    assert row.used_at is None


async def test_an_admin_email_change_kills_a_pending_change(
    client: httpx.AsyncClient, db: AsyncEngine, email_dir: Path
) -> None:
    admin_address = unique_email("admin")
    await register(client, admin_address)
    await execute(db, update(User).where(User.email == admin_address).values(is_superuser=True))
    admin = await sign_in(client, admin_address)
    session = await account(client)
    await request_change(client, session, unique_email("pending"))
    token = latest_change_token(email_dir)

    patched = await client.patch(
        f"{API}/admin/users/{session.user_id}",
        json={"email": unique_email("by-admin")},
        headers=admin.headers,
    )

    assert patched.status_code == 200, patched.text
    assert_error(await confirm_public(client, token), 400, "INVALID_VERIFICATION_TOKEN")


# --- races -------------------------------------------------------------------------------


async def test_two_accounts_confirming_the_same_address_one_wins_one_conflicts(
    client: httpx.AsyncClient, db: AsyncEngine, email_dir: Path
) -> None:
    target = unique_email("contested")
    first = await account(client, "first")
    second = await account(client, "second")
    await request_change(client, first, target)
    first_token = latest_change_token(email_dir)
    await request_change(client, second, target)
    second_token = latest_change_token(email_dir)
    assert first_token != second_token

    responses = await asyncio.gather(
        confirm_mine(client, first, first_token), confirm_mine(client, second, second_token)
    )

    assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]
    [conflict] = [r for r in responses if r.status_code == 409]
    assert_error(conflict, 409, "EMAIL_TAKEN")
    [winner] = [r for r in responses if r.status_code == 200]
    assert winner.json()["email"] == target
    owners = await fetch(db, select(User.id).where(User.email == target))
    assert len(owners) == 1
    # The loser's transaction was rolled back whole: its token and its sessions are intact.
    loser = first if conflict is responses[0] else second
    rows = {row.user_id: row for row in await change_rows(db)}
    assert rows[loser.user_id].used_at is None
    assert (await stored_user(db, loser.user_id)).email == loser.email
    await assert_session_alive(client, loser)
    assert len(notices(email_dir)) == 1


async def test_concurrent_confirms_of_one_change_token_succeed_exactly_once(
    client: httpx.AsyncClient, db: AsyncEngine, email_dir: Path
) -> None:
    session = await account(client)
    new = unique_email("new")
    await request_change(client, session, new)
    token = latest_change_token(email_dir)

    responses = await asyncio.gather(
        *(
            confirm_mine(client, session, token) if i % 2 else confirm_public(client, token)
            for i in range(6)
        )
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 400, 400, 400, 400, 400], statuses
    for response in responses:
        if response.status_code != 200:
            assert_error(response, 400, "INVALID_VERIFICATION_TOKEN")
    assert (await stored_user(db, session.user_id)).email == new
    assert len(notices(email_dir)) == 1


# --- secrets -----------------------------------------------------------------------------


async def test_the_token_never_reaches_logs_responses_or_the_database(
    client: httpx.AsyncClient,
    db: AsyncEngine,
    email_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="orgauth")
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    session = await account(client)
    requested = await request_change(client, session, unique_email("new"))
    token = latest_change_token(email_dir)
    confirmed = await confirm_mine(client, session, token)
    replayed = await confirm_public(client, token)
    assert confirmed.status_code == 200

    secret_part = token.removeprefix("oa_ev_")
    for response in (requested, confirmed, replayed):
        assert secret_part not in response.text
        assert all(secret_part not in value for value in response.headers.values())
    audits = {r.getMessage() for r in caplog.records if r.name == "orgauth.audit"}
    assert {"email.change_requested", "email.change_link_sent", "email.changed"} <= audits
    for record in caplog.records:
        text = record.getMessage() + " " + " ".join(str(v) for v in vars(record).values())
        assert secret_part not in text, record.name
    cells = [str(value) for row in await fetch(db, select(EmailVerificationToken)) for value in row]
    assert all(secret_part not in cell for cell in cells)
    assert hash_token(token) in {row.token_hash for row in await change_rows(db)}


async def test_a_failing_notice_is_logged_and_the_change_stands(
    make_app: ClientFactory, db: AsyncEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the email directory should be")
    custom = await make_app(email_file_dir=str(blocker))
    deliveries: list[VerificationDelivery] = []

    async def capture(delivery: VerificationDelivery) -> None:
        deliveries.append(delivery)

    custom.app.state.orgauth.hooks.on_email_verification_requested.append(capture)
    session = await account(custom.client)
    new = unique_email("new")
    await request_change(custom.client, session, new)
    [_, change] = deliveries

    with caplog.at_level(logging.ERROR, logger="orgauth.email"):
        response = await confirm_mine(custom.client, session, change.token)

    assert response.status_code == 200
    assert (await stored_user(db, session.user_id)).email == new
    failures = [r for r in caplog.records if r.getMessage() == "email change notice failed"]
    assert len(failures) == 1
    assert "oa_ev_" not in caplog.text
    assert session.email not in caplog.text
    assert new not in caplog.text


async def test_the_hook_receives_change_links_and_orgauth_sends_them_not(
    make_app: ClientFactory,
) -> None:
    custom = await make_app(frontend_url="https://app.example.test/")
    deliveries: list[VerificationDelivery] = []

    async def deliver(delivery: VerificationDelivery) -> None:
        deliveries.append(delivery)

    custom.app.state.orgauth.hooks.on_email_verification_requested.append(deliver)
    taken = await account(custom.client, "taken")
    session = await account(custom.client)
    new = unique_email("new")
    await request_change(custom.client, session, taken.email)  # no delivery at all
    await request_change(custom.client, session, new)

    assert [d.purpose for d in deliveries] == ["verify", "verify", "change"]
    change = deliveries[-1]
    assert str(change.user_id) == session.user["id"]
    assert change.email == new
    assert change.token.startswith("oa_ev_")
    assert change.url == (
        f"https://app.example.test/confirm-email?token={quote(change.token, safe='')}"
    )
    assert read_emails(custom.email_dir, CHANGE_SUBJECT) == []
    # The notice has no hook: it goes through the email backend.
    assert (await confirm_mine(custom.client, session, change.token)).status_code == 200
    assert [m["To"] for m in notices(custom.email_dir)] == [session.email]


# --- rate limits -------------------------------------------------------------------------


async def test_requests_are_limited_per_user_whatever_the_client_address(
    make_app: ClientFactory, db: AsyncEngine
) -> None:
    custom = await make_app(
        rate_limit_enabled=True,
        rate_limit_verify_email="2/hour",
        rate_limit_login="100/hour",
        forwarded_allow_ips="203.0.113.10",
    )
    session = await account(custom.client)

    def hop(n: int) -> dict[str, str]:
        return {"X-Forwarded-For": f"198.51.100.{n}"}

    # Refused attempts count too: the limit is counted before the password is checked.
    wrong = await request_change(
        custom.client, session, unique_email(), OTHER_PASSWORD, headers=hop(1)
    )
    assert_error(wrong, 400, "INVALID_PASSWORD")
    assert (
        await request_change(custom.client, session, unique_email(), headers=hop(2))
    ).status_code == 202

    over = await request_change(custom.client, session, unique_email(), headers=hop(3))

    assert_error(over, 429, "RATE_LIMITED")
    assert int(over.headers["retry-after"]) >= 1
    assert len(await change_rows(db)) == 1
    other = await account(custom.client, "other")
    assert (
        await request_change(custom.client, other, unique_email(), headers=hop(4))
    ).status_code == 202


async def test_requests_are_limited_per_ip(make_app: ClientFactory) -> None:
    custom = await make_app(
        rate_limit_enabled=True, rate_limit_verify_email="2/hour", rate_limit_login="100/hour"
    )
    sessions = [await account(custom.client, f"u{n}") for n in range(3)]
    for session in sessions[:2]:
        assert (await request_change(custom.client, session, unique_email())).status_code == 202

    assert_error(
        await request_change(custom.client, sessions[2], unique_email()), 429, "RATE_LIMITED"
    )


async def test_confirm_counts_on_the_shared_token_counter(make_app: ClientFactory) -> None:
    custom = await make_app(rate_limit_enabled=True, rate_limit_token_confirm="3/minute")
    session = await account(custom.client)
    for _ in range(2):
        assert_error(
            await confirm_mine(custom.client, session, "oa_ev_guess"),
            400,
            "INVALID_VERIFICATION_TOKEN",
        )
    assert_error(
        await confirm_public(custom.client, "oa_ev_guess"), 400, "INVALID_VERIFICATION_TOKEN"
    )

    assert_error(await confirm_mine(custom.client, session, "oa_ev_guess"), 429, "RATE_LIMITED")
