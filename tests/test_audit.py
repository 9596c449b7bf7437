"""Audit events on ``orgauth.audit`` (docs/SECURITY.md), and no secret in any log record."""

from __future__ import annotations

import email
import email.policy
import logging
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from orgauth.events import log_line as audit

API = "/api/v1"
PASSWORD = "Quartz-lantern-Orbit-71"
NEW_PASSWORD = "Velvet-canyon-Mosaic-38"
RESET_PASSWORD = "Saffron-glacier-Tundra-64"
WRONG_PASSWORD = "Wrong-guess-Pelican-17"
AUDIT_LOGGER = "orgauth.audit"


def events(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == AUDIT_LOGGER]


def find(caplog: pytest.LogCaptureFixture, event: str, **fields: Any) -> logging.LogRecord:
    """The one audit record for ``event`` whose fields include ``fields``."""
    matches = [
        r
        for r in events(caplog)
        if r.getMessage() == event and all(getattr(r, k, object()) == v for k, v in fields.items())
    ]
    assert len(matches) == 1, (event, fields, [(r.getMessage(), vars(r)) for r in events(caplog)])
    return matches[0]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(client: httpx.AsyncClient, password: str = PASSWORD) -> str:
    address = f"audit-{uuid.uuid4().hex[:10]}@example.com"
    response = await client.post(
        f"{API}/auth/register", json={"email": address, "password": password}
    )
    assert response.status_code == 201
    return address


async def login(
    client: httpx.AsyncClient, address: str, password: str = PASSWORD
) -> dict[str, Any]:
    response = await client.post(f"{API}/auth/login", json={"email": address, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def session_id(tokens: dict[str, Any]) -> str:
    import jwt

    sid: str = jwt.decode(tokens["access_token"], options={"verify_signature": False})["sid"]
    return sid


def reset_token_from(directory: Path) -> str:
    path = sorted(directory.glob("*.eml"))[-1]
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    match = re.search(r"token=(oa_pr_[A-Za-z0-9_-]+)", body.get_content())
    assert match is not None
    return match.group(1)


@pytest.fixture
def audit_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    return caplog


async def test_login_success_and_failures_are_audited(
    client: httpx.AsyncClient, audit_log: pytest.LogCaptureFixture
) -> None:
    address = await register(client)
    tokens = await login(client, address)
    user_id = tokens["user"]["id"]
    await client.post(f"{API}/auth/login", json={"email": address, "password": WRONG_PASSWORD})
    unknown = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    await client.post(f"{API}/auth/login", json={"email": unknown, "password": PASSWORD})

    success = find(audit_log, "login.success", user_id=user_id)
    assert success.session_id == session_id(tokens)
    assert success.ip == "203.0.113.10"
    assert find(audit_log, "login.failure", user_id=user_id).reason == "bad_password"
    assert find(audit_log, "login.failure", reason="unknown_email").actor_type == "anonymous"
    assert all(r.levelno == logging.INFO for r in events(audit_log))


async def test_refresh_reuse_is_audited(
    client: httpx.AsyncClient, audit_log: pytest.LogCaptureFixture
) -> None:
    tokens = await login(client, await register(client))
    first = tokens["refresh_token"]
    assert (await client.post(f"{API}/auth/refresh", json={"refresh_token": first})).is_success

    await client.post(f"{API}/auth/refresh", json={"refresh_token": first})

    record = find(audit_log, "token.reuse_detected", user_id=tokens["user"]["id"])
    assert record.session_id == session_id(tokens)


async def test_logout_and_logout_all_are_audited(
    client: httpx.AsyncClient, audit_log: pytest.LogCaptureFixture
) -> None:
    address = await register(client)
    first, second, _third = [await login(client, address) for _ in range(3)]
    user_id = first["user"]["id"]

    await client.post(f"{API}/auth/logout", headers=bearer(first["access_token"]))
    await client.post(f"{API}/auth/logout-all", headers=bearer(second["access_token"]))

    assert find(audit_log, "logout", user_id=user_id).session_id == session_id(first)
    assert find(audit_log, "logout_all", user_id=user_id).revoked == 2


async def test_password_change_is_audited(
    client: httpx.AsyncClient, audit_log: pytest.LogCaptureFixture
) -> None:
    address = await register(client)
    tokens = await login(client, address)
    await login(client, address)

    response = await client.post(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(tokens["access_token"]),
    )

    assert response.status_code == 200
    assert find(audit_log, "password.changed", user_id=tokens["user"]["id"]).revoked_sessions == 1


async def test_password_reset_request_and_completion_are_audited(
    client: httpx.AsyncClient, audit_log: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    address = await register(client)
    tokens = await login(client, address)
    user_id = tokens["user"]["id"]

    await client.post(f"{API}/auth/password-reset/request", json={"email": address})
    token = reset_token_from(tmp_path / "emails")
    confirmed = await client.post(
        f"{API}/auth/password-reset/confirm", json={"token": token, "new_password": RESET_PASSWORD}
    )

    assert confirmed.status_code == 200
    assert find(audit_log, "password.reset_requested", user_id=user_id).ip == "203.0.113.10"
    assert find(audit_log, "password.reset_completed", user_id=user_id).revoked_sessions == 1


async def test_password_reset_request_for_unknown_email_is_audited_without_the_email(
    client: httpx.AsyncClient, audit_log: pytest.LogCaptureFixture
) -> None:
    unknown = f"ghost-{uuid.uuid4().hex[:8]}@example.com"

    await client.post(f"{API}/auth/password-reset/request", json={"email": unknown})

    record = find(audit_log, "password.reset_requested", actor_type="anonymous")
    assert not hasattr(record, "user_id")
    assert unknown not in str(vars(record))


async def test_session_revocation_is_audited(
    client: httpx.AsyncClient, audit_log: pytest.LogCaptureFixture
) -> None:
    address = await register(client)
    caller, other = await login(client, address), await login(client, address)

    response = await client.delete(
        f"{API}/sessions/{session_id(other)}", headers=bearer(caller["access_token"])
    )

    assert response.status_code == 204
    record = find(audit_log, "session.revoked", user_id=caller["user"]["id"])
    assert record.session_id == session_id(other)


def test_audit_refuses_secret_field_names() -> None:
    for name in ("password", "token", "refresh_token", "access_token", "hash"):
        with pytest.raises(ValueError, match="secrets"):
            audit("test.event", **{name: "x"})


async def test_no_log_record_ever_carries_a_password_or_token(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    # Everything, from every logger, at every level (SQL statements and parameters too).
    caplog.set_level(logging.DEBUG)
    for name in ("orgauth", "sqlalchemy", "httpx", "uvicorn"):
        caplog.set_level(logging.DEBUG, logger=name)
    secrets: set[str] = {PASSWORD, NEW_PASSWORD, RESET_PASSWORD, WRONG_PASSWORD}

    address = await register(client)
    await client.post(f"{API}/auth/register", json={"email": address, "password": PASSWORD})
    await client.post(f"{API}/auth/login", json={"email": address, "password": WRONG_PASSWORD})
    first = await login(client, address)
    second = await login(client, address)
    rotated = (
        await client.post(f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    await client.post(f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]})
    await client.get(f"{API}/users/me", headers=bearer(second["access_token"]))
    await client.get(f"{API}/users/me", headers=bearer(second["access_token"] + "x"))
    await client.post(
        f"{API}/users/me/password",
        json={"current_password": WRONG_PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(second["access_token"]),
    )
    await client.post(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(second["access_token"]),
    )
    third = await login(client, address, NEW_PASSWORD)
    await client.delete(
        f"{API}/sessions/{session_id(third)}", headers=bearer(second["access_token"])
    )
    await client.post(f"{API}/auth/password-reset/request", json={"email": address})
    reset_token = reset_token_from(tmp_path / "emails")
    await client.post(
        f"{API}/auth/password-reset/confirm", json={"token": reset_token, "new_password": "weak"}
    )
    await client.post(
        f"{API}/auth/password-reset/confirm",
        json={"token": reset_token, "new_password": RESET_PASSWORD},
    )
    fourth = await login(client, address, RESET_PASSWORD)
    await client.post(f"{API}/auth/logout", headers=bearer(fourth["access_token"]))
    fifth = await login(client, address, RESET_PASSWORD)
    await client.post(f"{API}/auth/logout-all", headers=bearer(fifth["access_token"]))

    for tokens in (first, second, rotated, third, fourth, fifth):
        secrets.add(tokens["refresh_token"].removeprefix("oa_rt_"))
        secrets.add(tokens["access_token"])
        secrets.add(tokens["access_token"].rsplit(".", 1)[1])  # the signature alone
    secrets.add(reset_token.removeprefix("oa_pr_"))
    assert len(events(caplog)) >= 10
    for record in caplog.records:
        rendered = record.getMessage() + " " + " ".join(str(v) for v in vars(record).values())
        if record.exc_info:
            rendered += logging.Formatter().formatException(record.exc_info)
        for secret in secrets:
            assert secret not in rendered, (record.name, record.getMessage())
