"""Helpers for the invitation tests: sending, reading the emailed token, answering."""

from __future__ import annotations

import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from orgauth.models import Invitation, User, utcnow
from tests.support.http import API, execute, fetch, plain_text, read_emails, token_from_link
from tests.support.orgs import Account

INVITATION_KEYS = {
    "id",
    "organization_id",
    "organization_name",
    "email",
    "role",
    "status",
    "inviter_id",
    "created_at",
    "expires_at",
    "responded_at",
}


def invitations_url(org_id: uuid.UUID | str) -> str:
    return f"{API}/organizations/{org_id}/invitations"


async def invite(
    client: httpx.AsyncClient,
    org_id: uuid.UUID | str,
    by: Account,
    address: str,
    **fields: Any,
) -> httpx.Response:
    return await client.post(
        invitations_url(org_id), json={"email": address, **fields}, headers=by.headers
    )


async def invited(
    client: httpx.AsyncClient, org_id: uuid.UUID | str, by: Account, address: str, **fields: Any
) -> dict[str, Any]:
    """Invite and assert 201; the Invitation body."""
    response = await invite(client, org_id, by, address, **fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def accept(client: httpx.AsyncClient, by: Account | None, **body: Any) -> httpx.Response:
    return await client.post(
        f"{API}/invitations/accept", json=body, headers=by.headers if by else {}
    )


async def decline(client: httpx.AsyncClient, by: Account | None, **body: Any) -> httpx.Response:
    return await client.post(
        f"{API}/invitations/decline", json=body, headers=by.headers if by else {}
    )


def invitation_emails(directory: Path, to: str | None = None) -> list[EmailMessage]:
    return [
        message
        for message in read_emails(directory)
        if str(message["Subject"]).startswith("You have been invited to join ")
        and (to is None or message["To"] == to)
    ]


def invitation_links(message: EmailMessage) -> list[str]:
    return [word for word in plain_text(message).split() if "accept-invitation?token=" in word]


def latest_invitation_token(directory: Path, to: str) -> str:
    """The token of the newest invitation email to ``to``."""
    messages = invitation_emails(directory, to)
    assert messages, f"no invitation email to {to} in {directory}"
    links = invitation_links(messages[-1])
    assert len(links) == 1, links
    return token_from_link(links[0])


async def mark_verified(engine: AsyncEngine, user_id: uuid.UUID) -> None:
    await execute(engine, update(User).where(User.id == user_id).values(email_verified_at=utcnow()))


async def invitation_row(engine: AsyncEngine, invitation_id: uuid.UUID | str) -> Invitation:
    async with AsyncSession(engine) as session:
        invitation = await session.get(Invitation, uuid.UUID(str(invitation_id)))
    assert invitation is not None
    return invitation


async def invitation_count(engine: AsyncEngine) -> int:
    [row] = await fetch(engine, select(func.count()).select_from(Invitation))
    return int(row[0])


async def expire(engine: AsyncEngine, invitation_id: uuid.UUID | str) -> None:
    """Move an invitation's expiry into the past."""
    from datetime import timedelta

    await execute(
        engine,
        update(Invitation)
        .where(Invitation.id == uuid.UUID(str(invitation_id)))
        .values(expires_at=utcnow() - timedelta(seconds=1)),
    )
