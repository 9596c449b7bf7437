"""Email verification: POST /auth/verify-email/request and /confirm, the link sent at
registration, accounts verified at creation, and sign-in with REQUIRE_VERIFIED_EMAIL
(docs/API.md, docs/SECURITY.md)."""

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
    OTHER_PASSWORD,
    PASSWORD,
    USER_KEYS,
    VERIFY_SUBJECT,
    ClientFactory,
    assert_error,
    assert_session_alive,
    bearer,
    execute,
    fetch,
    insert_user,
    latest_reset_token,
    latest_verification_token,
    login,
    plain_text,
    read_emails,
    register,
    sign_in,
    unique_email,
    verify_links,
)
from tests.support.orgs import Account, Factory

REQUESTED = (
    "If that address has an account awaiting verification, a verification link has been sent."
)


async def request_link(client: httpx.AsyncClient, address: str, **kwargs: Any) -> httpx.Response:
    return await client.post(f"{API}/auth/verify-email/request", json={"email": address}, **kwargs)


async def confirm(client: httpx.AsyncClient, token: str, **kwargs: Any) -> httpx.Response:
    return await client.post(f"{API}/auth/verify-email/confirm", json={"token": token}, **kwargs)


async def verified_at(engine: AsyncEngine, user_id: uuid.UUID | str) -> Any:
    [row] = await fetch(
        engine, select(User.email_verified_at).where(User.id == uuid.UUID(str(user_id)))
    )
    return row[0]


async def token_rows(engine: AsyncEngine) -> list[Any]:
    return list(await fetch(engine, select(EmailVerificationToken)))


def recipients(directory: Path) -> list[str]:
    return [message["To"] for message in read_emails(directory, VERIFY_SUBJECT)]


# --- sending -----------------------------------------------------------------------------


async def test_registration_sends_a_verification_link_to_the_frontend(
    make_app: ClientFactory, db: AsyncEngine
) -> None:
    custom = await make_app(frontend_url="https://app.example.org/")
    address = unique_email()

    user = await register(custom.client, address)

    assert set(user) == USER_KEYS
    assert user["email_verified"] is False
    [message] = read_emails(custom.email_dir)
    assert message["To"] == address
    assert message["Subject"] == VERIFY_SUBJECT
    [link] = verify_links(message)
    token = latest_verification_token(custom.email_dir)
    assert token.startswith("oa_ev_")
    assert link == f"https://app.example.org/verify-email?token={quote(token, safe='')}"
    [row] = await token_rows(db)
    assert row.purpose == "verify"
    assert row.email == address
    assert row.session_id is None
    assert row.token_hash == hash_token(token)


async def test_confirm_verifies_the_address_once(
    client: httpx.AsyncClient, db: AsyncEngine, email_dir: Path
) -> None:
    address = unique_email()
    user = await register(client, address)
    token = latest_verification_token(email_dir)

    response = await confirm(client, token)

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == USER_KEYS
    assert body["id"] == user["id"]
    assert body["email_verified"] is True
    assert await verified_at(db, user["id"]) is not None
    session = await sign_in(client, address)
    me = await client.get(f"{API}/users/me", headers=session.headers)
    assert me.json()["email_verified"] is True
    # Replay: the link works once.
    assert_error(await confirm(client, token), 400, "INVALID_VERIFICATION_TOKEN")


async def test_request_answers_identically_and_sends_only_to_unverified_active_accounts(
    client: httpx.AsyncClient, db: AsyncEngine, email_dir: Path
) -> None:
    waiting = await register(client, unique_email("waiting"))
    verified = await register(client, unique_email("verified"))
    inactive = await register(client, unique_email("inactive"))
    await execute(
        db,
        update(User).where(User.id == uuid.UUID(verified["id"])).values(email_verified_at=utcnow()),
    )
    await execute(
        db, update(User).where(User.id == uuid.UUID(inactive["id"])).values(is_active=False)
    )
    sent_at_registration = recipients(email_dir)

    responses = [
        await request_link(client, waiting["email"]),
        await request_link(client, unique_email("nobody")),
        await request_link(client, verified["email"]),
        await request_link(client, inactive["email"]),
        await request_link(client, "not-an-email"),
        await request_link(client, waiting["email"].upper()),
    ]

    for response in responses:
        assert response.status_code == 202
        assert response.content == responses[0].content
        assert response.headers.get("content-length") == responses[0].headers.get("content-length")
    assert responses[0].json() == {"message": REQUESTED}
    assert recipients(email_dir) == [*sent_at_registration, waiting["email"], waiting["email"]]


async def test_request_body_shape_is_the_only_422(client: httpx.AsyncClient) -> None:
    for body in ({}, {"email": 5}, {"email": "a@example.com", "extra": 1}, {"email": "x" * 400}):
        response = await client.post(f"{API}/auth/verify-email/request", json=body)
        assert response.status_code == 422, body


async def test_a_new_link_supersedes_the_older_one(
    client: httpx.AsyncClient, db: AsyncEngine, email_dir: Path
) -> None:
    address = unique_email()
    await register(client, address)
    first = latest_verification_token(email_dir)
    assert (await request_link(client, address)).status_code == 202
    second = latest_verification_token(email_dir)
    assert second != first

    assert_error(await confirm(client, first), 400, "INVALID_VERIFICATION_TOKEN")
    assert (await confirm(client, second)).status_code == 200
    assert all(row.used_at is not None for row in await token_rows(db))


# --- refused tokens ----------------------------------------------------------------------


async def test_expired_token_is_refused(
    client: httpx.AsyncClient, db: AsyncEngine, email_dir: Path
) -> None:
    user = await register(client)
    token = latest_verification_token(email_dir)
    await execute(
        db,
        update(EmailVerificationToken).values(expires_at=utcnow() - timedelta(seconds=1)),
    )

    assert_error(await confirm(client, token), 400, "INVALID_VERIFICATION_TOKEN")
    assert await verified_at(db, user["id"]) is None


async def test_token_lifetime_follows_the_setting(make_app: ClientFactory, db: AsyncEngine) -> None:
    custom = await make_app(email_verify_expire_hours=1.5)
    before = utcnow()
    await register(custom.client)

    [row] = await token_rows(db)
    lifetime = row.expires_at - row.created_at
    assert lifetime == timedelta(hours=1.5)
    assert row.created_at >= before - timedelta(seconds=1)
    assert "within 90 minutes" in plain_text(read_emails(custom.email_dir)[0])


@pytest.mark.parametrize(
    "token",
    [
        "oa_ev_",
        "oa_ev_" + "A" * 43,
        "oa_rt_" + "A" * 43,
        "nonsense",
    ],
)
async def test_unknown_or_foreign_tokens_are_refused(client: httpx.AsyncClient, token: str) -> None:
    assert_error(await confirm(client, token), 400, "INVALID_VERIFICATION_TOKEN")


async def test_a_reset_token_is_not_a_verification_token(
    client: httpx.AsyncClient, db: AsyncEngine, email_dir: Path
) -> None:
    user = await register(client)
    await client.post(f"{API}/auth/password-reset/request", json={"email": user["email"]})
    reset_token = latest_reset_token(email_dir)
    verification_token = latest_verification_token(email_dir)
    assert reset_token.startswith("oa_pr_")

    assert_error(await confirm(client, reset_token), 400, "INVALID_VERIFICATION_TOKEN")
    # ... and a verification token with the reset prefix is unknown too.
    forged = "oa_ev_" + reset_token.removeprefix("oa_pr_")
    assert_error(await confirm(client, forged), 400, "INVALID_VERIFICATION_TOKEN")
    assert await verified_at(db, user["id"]) is None
    assert (await confirm(client, verification_token)).status_code == 200


async def test_token_of_a_deactivated_account_is_refused(
    client: httpx.AsyncClient, db: AsyncEngine, email_dir: Path
) -> None:
    user = await register(client)
    token = latest_verification_token(email_dir)
    await execute(db, update(User).where(User.id == uuid.UUID(user["id"])).values(is_active=False))

    assert_error(await confirm(client, token), 400, "INVALID_VERIFICATION_TOKEN")
    [row] = await token_rows(db)
    assert row.used_at is None  # not spent by a refused attempt


async def test_token_for_an_address_the_account_no_longer_has_is_refused(
    client: httpx.AsyncClient, db: AsyncEngine, email_dir: Path
) -> None:
    user = await register(client)
    token = latest_verification_token(email_dir)
    # Changed behind orgauth's back (no token is killed): the address check alone refuses.
    await execute(
        db,
        update(User).where(User.id == uuid.UUID(user["id"])).values(email=unique_email("renamed")),
    )

    assert_error(await confirm(client, token), 400, "INVALID_VERIFICATION_TOKEN")
    assert await verified_at(db, user["id"]) is None


async def test_confirm_keeps_an_earlier_verification_time(
    client: httpx.AsyncClient, db: AsyncEngine, email_dir: Path
) -> None:
    user = await register(client)
    token = latest_verification_token(email_dir)
    earlier = utcnow() - timedelta(days=2)
    await execute(
        db, update(User).where(User.id == uuid.UUID(user["id"])).values(email_verified_at=earlier)
    )

    response = await confirm(client, token)

    assert response.status_code == 200
    assert response.json()["email_verified"] is True
    assert await verified_at(db, user["id"]) == earlier


async def test_concurrent_confirms_with_one_token_succeed_exactly_once(
    client: httpx.AsyncClient, db: AsyncEngine, email_dir: Path
) -> None:
    user = await register(client)
    token = latest_verification_token(email_dir)

    responses = await asyncio.gather(*(confirm(client, token) for _ in range(6)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 400, 400, 400, 400, 400], statuses
    for response in responses:
        if response.status_code != 200:
            assert_error(response, 400, "INVALID_VERIFICATION_TOKEN")
    assert await verified_at(db, user["id"]) is not None


async def test_confirm_malformed_body_is_422(client: httpx.AsyncClient) -> None:
    for body in ({}, {"token": ""}, {"token": "oa_ev_" + "a" * 600}, {"token": "x", "more": 1}):
        response = await client.post(f"{API}/auth/verify-email/confirm", json=body)
        assert response.status_code == 422, body


# --- secrets -----------------------------------------------------------------------------


async def test_raw_token_never_reaches_the_logs_or_the_database(
    client: httpx.AsyncClient,
    db: AsyncEngine,
    email_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="orgauth")
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    user = await register(client)
    assert (await request_link(client, user["email"])).status_code == 202
    tokens = [
        token
        for message in read_emails(email_dir, VERIFY_SUBJECT)
        for token in (link.split("token=", 1)[1] for link in verify_links(message))
    ]
    assert len(tokens) == 2
    assert (await confirm(client, tokens[-1])).status_code == 200

    assert any(r.name == "orgauth.audit" for r in caplog.records)
    for token in tokens:
        secret_part = token.removeprefix("oa_ev_")
        for record in caplog.records:
            text = record.getMessage() + " " + " ".join(str(v) for v in vars(record).values())
            assert secret_part not in text, record.name
    cells = [str(value) for row in await token_rows(db) for value in row]
    for token in tokens:
        assert all(token.removeprefix("oa_ev_") not in cell for cell in cells)
    assert {row.token_hash for row in await token_rows(db)} == {hash_token(t) for t in tokens}


async def test_a_failing_email_backend_is_logged_without_the_token(
    make_app: ClientFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the email directory should be")
    custom = await make_app(email_file_dir=str(blocker))

    with caplog.at_level(logging.ERROR, logger="orgauth.email"):
        await register(custom.client)

    failures = [r for r in caplog.records if r.getMessage() == "verification email failed"]
    assert len(failures) == 1
    assert "oa_ev_" not in caplog.text


# --- rate limits -------------------------------------------------------------------------


async def test_request_is_limited_per_ip(make_app: ClientFactory) -> None:
    custom = await make_app(rate_limit_enabled=True, rate_limit_verify_email="2/hour")
    for _ in range(2):
        assert (await request_link(custom.client, unique_email())).status_code == 202

    response = await request_link(custom.client, unique_email())

    assert_error(response, 429, "RATE_LIMITED")
    assert int(response.headers["retry-after"]) >= 1


async def test_links_to_one_account_are_limited_whatever_the_client_address(
    make_app: ClientFactory,
) -> None:
    custom = await make_app(
        rate_limit_enabled=True,
        rate_limit_verify_email="2/hour",
        rate_limit_register="100/hour",
        forwarded_allow_ips="203.0.113.10",
    )
    address = unique_email("flooded")
    await register(custom.client, address)  # the registration's own link is not counted
    for n in range(5):
        response = await request_link(
            custom.client, address, headers={"X-Forwarded-For": f"198.51.100.{n + 1}"}
        )
        assert response.status_code == 202

    assert len(recipients(custom.email_dir)) == 1 + 2


async def test_requests_for_an_unknown_address_count_toward_its_limit(
    make_app: ClientFactory,
) -> None:
    custom = await make_app(
        rate_limit_enabled=True,
        rate_limit_verify_email="2/hour",
        forwarded_allow_ips="203.0.113.10",
    )
    address = unique_email("later")
    for n in range(2):  # nobody has the address yet
        response = await request_link(
            custom.client, address, headers={"X-Forwarded-For": f"198.51.100.{n + 1}"}
        )
        assert response.status_code == 202
    await register(custom.client, address)  # its own link is sent regardless

    response = await request_link(
        custom.client, address, headers={"X-Forwarded-For": "198.51.100.9"}
    )

    assert response.status_code == 202
    assert recipients(custom.email_dir) == [address]  # the request was dropped


async def test_confirm_is_limited_per_ip_by_the_shared_token_counter(
    make_app: ClientFactory,
) -> None:
    custom = await make_app(rate_limit_enabled=True, rate_limit_token_confirm="3/minute")
    for _ in range(3):
        assert_error(await confirm(custom.client, "oa_ev_guess"), 400, "INVALID_VERIFICATION_TOKEN")

    assert_error(await confirm(custom.client, "oa_ev_guess"), 429, "RATE_LIMITED")
    other = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=custom.app, client=("198.51.100.7", 50000)),
        base_url="http://testserver",
    )
    async with other:
        assert_error(await confirm(other, "oa_ev_guess"), 400, "INVALID_VERIFICATION_TOKEN")


# --- accounts verified at creation -------------------------------------------------------


async def test_admin_created_users_are_verified_by_default_and_get_no_email(
    client: httpx.AsyncClient, superuser: Account, email_dir: Path
) -> None:
    vouched = await client.post(
        f"{API}/admin/users",
        json={"email": unique_email("vouched"), "password": PASSWORD},
        headers=superuser.headers,
    )
    unvouched = await client.post(
        f"{API}/admin/users",
        json={"email": unique_email("unvouched"), "password": PASSWORD, "email_verified": False},
        headers=superuser.headers,
    )

    assert vouched.status_code == unvouched.status_code == 201
    assert set(vouched.json()) == USER_KEYS
    assert vouched.json()["email_verified"] is True
    assert unvouched.json()["email_verified"] is False
    assert recipients(email_dir) == []
    # The unvouched one can still ask for a link.
    await request_link(client, unvouched.json()["email"])
    assert recipients(email_dir) == [unvouched.json()["email"]]


async def test_admin_patch_sets_and_clears_the_verification(
    client: httpx.AsyncClient, superuser: Account, db: AsyncEngine
) -> None:
    user = await register(client)
    path = f"{API}/admin/users/{user['id']}"

    set_ = await client.patch(path, json={"email_verified": True}, headers=superuser.headers)
    assert set_.status_code == 200
    assert set_.json()["email_verified"] is True
    first = await verified_at(db, user["id"])
    again = await client.patch(path, json={"email_verified": True}, headers=superuser.headers)
    assert again.json()["email_verified"] is True
    assert await verified_at(db, user["id"]) == first  # kept when already set
    cleared = await client.patch(path, json={"email_verified": False}, headers=superuser.headers)
    assert cleared.status_code == 200
    assert cleared.json()["email_verified"] is False
    assert await verified_at(db, user["id"]) is None
    null = await client.patch(path, json={"email_verified": None}, headers=superuser.headers)
    assert null.status_code == 422


async def test_admin_email_change_verifies_the_new_address_and_kills_old_links(
    client: httpx.AsyncClient, superuser: Account, db: AsyncEngine, email_dir: Path
) -> None:
    user = await register(client)
    verification = latest_verification_token(email_dir)
    await client.post(f"{API}/auth/password-reset/request", json={"email": user["email"]})
    reset = latest_reset_token(email_dir)
    path = f"{API}/admin/users/{user['id']}"

    changed = await client.patch(
        path, json={"email": unique_email("new")}, headers=superuser.headers
    )

    assert changed.status_code == 200
    assert changed.json()["email_verified"] is True
    assert_error(await confirm(client, verification), 400, "INVALID_VERIFICATION_TOKEN")
    reset_response = await client.post(
        f"{API}/auth/password-reset/confirm", json={"token": reset, "new_password": OTHER_PASSWORD}
    )
    assert_error(reset_response, 400, "INVALID_RESET_TOKEN")
    # The same body may say the new address is not verified.
    unverified = await client.patch(
        path,
        json={"email": unique_email("newer"), "email_verified": False},
        headers=superuser.headers,
    )
    assert unverified.json()["email_verified"] is False
    assert await verified_at(db, user["id"]) is None


async def test_first_superuser_is_verified(make_app: ClientFactory, db: AsyncEngine) -> None:
    address = unique_email("first")
    custom = await make_app(first_superuser_email=address, first_superuser_password=PASSWORD)

    session = await sign_in(custom.client, address)

    assert session.user["is_superuser"] is True
    assert session.user["email_verified"] is True
    assert recipients(custom.email_dir) == []


# --- sign-in with REQUIRE_VERIFIED_EMAIL ------------------------------------------------


async def test_unverified_sign_in_is_refused_only_after_the_credentials(
    make_app: ClientFactory, db: AsyncEngine
) -> None:
    custom = await make_app(require_verified_email=True)
    address = unique_email("waiting")
    await register(custom.client, address)
    inactive = unique_email("inactive")
    await insert_user(db, inactive, is_active=False)

    unknown = await login(custom.client, unique_email("nobody"))
    wrong = await login(custom.client, address, OTHER_PASSWORD)
    off = await login(custom.client, inactive)
    for response in (unknown, wrong, off):
        assert_error(response, 401, "INVALID_CREDENTIALS")
        assert response.content == unknown.content

    refused = await login(custom.client, address)
    assert_error(refused, 403, "EMAIL_NOT_VERIFIED")
    assert "access_token" not in refused.text
    form = await custom.client.post(
        f"{API}/auth/login/oauth", data={"username": address, "password": PASSWORD}
    )
    assert_error(form, 403, "EMAIL_NOT_VERIFIED")
    assert list(await fetch(db, select(UserSession.id))) == []

    assert (
        await confirm(custom.client, latest_verification_token(custom.email_dir))
    ).status_code == 200
    assert (await login(custom.client, address)).status_code == 200


async def test_wrong_password_of_an_unverified_account_is_checked_like_any_other(
    make_app: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    custom = await make_app(require_verified_email=True)
    address = unique_email("waiting")
    user = await register(custom.client, address)
    caplog.set_level(logging.INFO, logger="orgauth.audit")

    assert_error(await login(custom.client, address, OTHER_PASSWORD), 401, "INVALID_CREDENTIALS")
    assert_error(await login(custom.client, address), 403, "EMAIL_NOT_VERIFIED")

    # The first failure came from the bcrypt verification itself, the second after it.
    reasons = [
        getattr(r, "reason", None)
        for r in caplog.records
        if r.name == "orgauth.audit" and r.getMessage() == "login.failure"
    ]
    assert reasons == ["bad_password", "email_not_verified"]
    assert all(
        getattr(r, "user_id", None) == user["id"]
        for r in caplog.records
        if r.getMessage() == "login.failure"
    )


async def test_existing_sessions_keep_working_when_verification_becomes_required(
    client: httpx.AsyncClient, make_app: ClientFactory
) -> None:
    address = unique_email()
    await register(client, address)
    session = await sign_in(client, address)  # signed in while not required

    strict = await make_app(require_verified_email=True)

    await assert_session_alive(strict.client, session)
    response = await strict.client.get(f"{API}/users/me", headers=bearer(session.access_token))
    assert response.json()["email_verified"] is False


async def test_verification_is_not_required_by_default(client: httpx.AsyncClient) -> None:
    address = unique_email()
    await register(client, address)

    assert (await login(client, address)).status_code == 200


# --- the hook ----------------------------------------------------------------------------


async def test_hook_receives_the_delivery_and_orgauth_sends_nothing(
    make_app: ClientFactory, db: AsyncEngine
) -> None:
    custom = await make_app(frontend_url="https://app.example.test/")
    deliveries: list[VerificationDelivery] = []

    async def deliver(delivery: VerificationDelivery) -> None:
        deliveries.append(delivery)

    custom.app.state.orgauth.hooks.on_email_verification_requested.append(deliver)
    user = await register(custom.client)
    await request_link(custom.client, user["email"])
    await request_link(custom.client, unique_email("nobody"))

    assert [d.email for d in deliveries] == [user["email"], user["email"]]
    delivery = deliveries[-1]
    assert str(delivery.user_id) == user["id"]
    assert delivery.purpose == "verify"
    assert delivery.token.startswith("oa_ev_")
    assert delivery.url == (
        f"https://app.example.test/verify-email?token={quote(delivery.token, safe='')}"
    )
    assert read_emails(custom.email_dir) == []
    assert_error(
        await confirm(custom.client, deliveries[0].token), 400, "INVALID_VERIFICATION_TOKEN"
    )
    assert (await confirm(custom.client, delivery.token)).status_code == 200


async def test_factory_accounts_are_unverified_until_confirmed(factory: Factory) -> None:
    account = await factory.registered_account()
    response = await factory.client.get(f"{API}/users/me", headers=account.headers)

    assert response.json()["email_verified"] is False
