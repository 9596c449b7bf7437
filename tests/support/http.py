"""HTTP helpers: users, signed-in sessions, error shapes, emails, rows.

Everything goes through the real app and the real test database (no mocks): a helper that
"creates a user" registers one over HTTP, a helper that "logs in" calls ``/auth/login``.
"""

from __future__ import annotations

import email
import email.policy
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
from fastapi import FastAPI
from sqlalchemy import Executable, event
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from orgauth.models import User
from orgauth.security.passwords import hash_password_sync

API = "/api/v1"
#: The socket peer of every test client (see tests/conftest.py).
PEER_IP = "203.0.113.10"
#: Strong for the policy (zxcvbn >= 3), unrelated to any test user's email or names.
PASSWORD = "Quartz-lantern-Orbit-71"
OTHER_PASSWORD = "Velvet-canyon-Mosaic-38"
CHROME_WINDOWS_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
IPHONE_SAFARI_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
USER_KEYS = {
    "id",
    "email",
    "first_name",
    "last_name",
    "is_active",
    "is_superuser",
    "email_verified",
    "created_at",
    "updated_at",
}
TOKEN_KEYS = {"access_token", "refresh_token", "token_type", "expires_in", "user"}
SESSION_KEYS = {
    "id",
    "device_name",
    "device_type",
    "browser",
    "os",
    "ip_address",
    "created_at",
    "last_used_at",
    "expires_at",
    "is_current",
}


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def unverified_claims(access_token: str) -> dict[str, Any]:
    """The payload of an access token, read without checking the signature."""
    claims: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
    return claims


def error_code(response: httpx.Response) -> str:
    """The orgauth error code of a response (asserting the error body's shape on the way)."""
    body = response.json()
    assert set(body) == {"detail"}, body
    assert set(body["detail"]) == {"code", "message"}, body
    code: str = body["detail"]["code"]
    return code


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert error_code(response) == code
    if status == 401:
        assert response.headers.get("www-authenticate") == "Bearer"


@dataclass
class LoggedIn:
    """A registered user signed in once: the tokens of that one session."""

    user: dict[str, Any]
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)

    @property
    def user_id(self) -> uuid.UUID:
        return uuid.UUID(self.user["id"])

    @property
    def session_id(self) -> uuid.UUID:
        return uuid.UUID(unverified_claims(self.access_token)["sid"])


async def register(
    client: httpx.AsyncClient,
    email_address: str | None = None,
    password: str = PASSWORD,
    **fields: Any,
) -> dict[str, Any]:
    """Register over HTTP; returns the User body (asserts 201)."""
    body = {"email": email_address or unique_email(), "password": password, **fields}
    response = await client.post(f"{API}/auth/register", json=body)
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()
    return user


async def login(
    client: httpx.AsyncClient,
    email_address: str,
    password: str = PASSWORD,
    *,
    user_agent: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST /auth/login and return the raw response."""
    sent = dict(headers or {})
    if user_agent is not None:
        sent["User-Agent"] = user_agent
    return await client.post(
        f"{API}/auth/login", json={"email": email_address, "password": password}, headers=sent
    )


def logged_in_from(response: httpx.Response, email_address: str, password: str) -> LoggedIn:
    assert response.status_code == 200, response.text
    body = response.json()
    return LoggedIn(
        user=body["user"],
        email=email_address,
        password=password,
        access_token=body["access_token"],
        refresh_token=body["refresh_token"],
    )


async def sign_in(
    client: httpx.AsyncClient,
    email_address: str,
    password: str = PASSWORD,
    *,
    user_agent: str | None = None,
    headers: dict[str, str] | None = None,
) -> LoggedIn:
    """Log in (asserting 200) and return the session's tokens."""
    response = await login(client, email_address, password, user_agent=user_agent, headers=headers)
    return logged_in_from(response, email_address, password)


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post(f"{API}/auth/refresh", json={"refresh_token": refresh_token})


async def me(client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await client.get(f"{API}/users/me", headers=bearer(access_token))


async def assert_session_dead(client: httpx.AsyncClient, session: LoggedIn) -> None:
    """Neither the access token nor the refresh token of ``session`` works any more."""
    assert_error(await me(client, session.access_token), 401, "INVALID_TOKEN")
    assert_error(await refresh(client, session.refresh_token), 401, "INVALID_REFRESH_TOKEN")


async def assert_session_alive(client: httpx.AsyncClient, session: LoggedIn) -> LoggedIn:
    """Both tokens still work; returns the session with its rotated refresh token."""
    response = await me(client, session.access_token)
    assert response.status_code == 200, response.text
    rotated = await refresh(client, session.refresh_token)
    assert rotated.status_code == 200, rotated.text
    return logged_in_from(rotated, session.email, session.password)


class UserFactory(Protocol):
    async def __call__(
        self,
        *,
        email_address: str | None = None,
        password: str = PASSWORD,
        user_agent: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> LoggedIn: ...


@dataclass
class CustomApp:
    app: FastAPI
    client: httpx.AsyncClient
    email_dir: Path


ClientFactory = Callable[..., Awaitable[CustomApp]]


RESET_SUBJECT = "Reset your password"
VERIFY_SUBJECT = "Verify your email address"
CHANGE_SUBJECT = "Confirm your new email address"
CHANGED_SUBJECT = "Your email address was changed"


def read_emails(directory: Path, subject: str | None = None) -> list[EmailMessage]:
    """Every message the file backend wrote (with ``subject``, if given), oldest first.

    Registration sends a verification email: tests about other emails name their subject.
    """
    if not directory.exists():
        return []
    messages: list[EmailMessage] = []
    for path in sorted(directory.glob("*.eml")):
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        if subject is None or parsed["Subject"] == subject:
            messages.append(parsed)
    return messages


def plain_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    text: str = part.get_content()  # type: ignore[attr-defined]
    return text


def reset_links(message: EmailMessage) -> list[str]:
    return [word for word in plain_text(message).split() if "reset-password?token=" in word]


def token_from_link(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


def verify_links(message: EmailMessage) -> list[str]:
    return [word for word in plain_text(message).split() if "verify-email?token=" in word]


def change_links(message: EmailMessage) -> list[str]:
    return [word for word in plain_text(message).split() if "confirm-email?token=" in word]


def latest_change_token(directory: Path, to: str | None = None) -> str:
    """The token of the newest email-change confirmation (to ``to``, if given)."""
    messages = [m for m in read_emails(directory, CHANGE_SUBJECT) if to is None or m["To"] == to]
    assert messages, f"no email-change confirmation in {directory}"
    links = change_links(messages[-1])
    assert len(links) == 1, links
    return token_from_link(links[0])


def latest_reset_token(directory: Path) -> str:
    messages = read_emails(directory, RESET_SUBJECT)
    assert messages, f"no reset email in {directory}"
    links = reset_links(messages[-1])
    assert len(links) == 1, links
    return token_from_link(links[0])


def latest_verification_token(directory: Path, to: str | None = None) -> str:
    """The token of the newest verification email (to ``to``, if given)."""
    messages = [m for m in read_emails(directory, VERIFY_SUBJECT) if to is None or m["To"] == to]
    assert messages, f"no verification email in {directory}"
    links = verify_links(messages[-1])
    assert len(links) == 1, links
    return token_from_link(links[0])


async def fetch(engine: AsyncEngine, statement: Executable) -> Sequence[Row[Any]]:
    async with engine.connect() as connection:
        return (await connection.execute(statement)).all()


async def execute(engine: AsyncEngine, statement: Executable) -> None:
    async with engine.begin() as connection:
        await connection.execute(statement)


async def insert_user(
    engine: AsyncEngine,
    email_address: str,
    password: str = PASSWORD,
    *,
    rounds: int = 4,
    is_active: bool = True,
) -> uuid.UUID:
    """Insert a user straight into the database, hashed at ``rounds`` (bypasses the API)."""
    user = User(
        email=email_address,
        hashed_password=hash_password_sync(password, rounds),
        is_active=is_active,
    )
    async with AsyncSession(engine, expire_on_commit=False) as session:
        session.add(user)
        await session.commit()
    return user.id


class ResponseStartMarker:
    """ASGI wrapper recording which SQL statements ran before the response was started."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.started = False
        self.before_response: list[str] = []
        self.after_response: list[str] = []
        engine = app.state.orgauth.engine.sync_engine
        event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        (self.after_response if self.started else self.before_response).append(statement)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.started = False
        self.before_response, self.after_response = [], []

        async def marking_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.started = True
            await send(message)

        await self.app(scope, receive, marking_send)
