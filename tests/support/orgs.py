"""Factories for the organization, admin and performance tests.

Users are inserted straight into the test database (with one bcrypt hash computed once and
reused) and then signed in through the real ``/auth/login`` route, so every token in these
tests is a real one. Organizations are created over HTTP by their owner; extra members are
inserted directly, which keeps the setup cheap without mocking anything.

"""

from __future__ import annotations

import functools
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth.models import Membership, Organization, OrgRole, User, utcnow
from orgauth.security.passwords import hash_password_sync
from tests.support.http import API, PASSWORD, USER_KEYS, assert_error, bearer, unique_email

PEER = ("203.0.113.10", 50000)
#: The cost the test settings use (make_settings: bcrypt_rounds=4), so logins never rehash.
TEST_BCRYPT_ROUNDS = 4
ORG_KEYS = {"id", "name", "slug", "description", "created_at", "updated_at", "member_count"}
MEMBER_KEYS = {"user_id", "email", "first_name", "last_name", "role", "permissions", "joined_at"}
PAGINATION_KEYS = {"total", "page", "page_size", "total_pages", "has_next", "has_prev"}


@functools.cache
def password_hash() -> str:
    """The stored hash of :data:`PASSWORD`, computed once per process."""
    return hash_password_sync(PASSWORD, TEST_BCRYPT_ROUNDS)


def assert_validation_error(response: httpx.Response) -> None:
    """FastAPI's request-validation 422: ``{"detail": [...]}``."""
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list), response.text


def audit_events(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "orgauth.audit"]


def audit_event(caplog: pytest.LogCaptureFixture, name: str) -> logging.LogRecord:
    """The one audit record named ``name`` (asserting there is exactly one)."""
    found = [record for record in audit_events(caplog) if record.getMessage() == name]
    assert len(found) == 1, [record.getMessage() for record in audit_events(caplog)]
    return found[0]


@dataclass(frozen=True)
class Account:
    """A user signed in once: the user's id and the access token of that session."""

    id: uuid.UUID
    email: str
    access_token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)


@dataclass(frozen=True)
class RoledOrg:
    """An organization with one member of each role and a signed-in outsider."""

    id: uuid.UUID
    slug: str
    owner: Account
    admin: Account
    member: Account
    outsider: Account

    @property
    def url(self) -> str:
        return f"{API}/organizations/{self.id}"

    def member_url(self, user_id: uuid.UUID) -> str:
        return f"{self.url}/members/{user_id}"

    def by_role(self, role: str) -> Account:
        return {"owner": self.owner, "admin": self.admin, "member": self.member}[role]


class Factory:
    """Builds users, signed-in accounts, organizations and memberships on the test database."""

    def __init__(self, engine: AsyncEngine, client: httpx.AsyncClient) -> None:
        self.engine = engine
        self.client = client

    # --- users ---------------------------------------------------------------------

    async def user(
        self,
        *,
        email: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        is_active: bool = True,
        is_superuser: bool = False,
        created_at: datetime | None = None,
    ) -> uuid.UUID:
        """Insert a user directly (password :data:`PASSWORD`); returns the id."""
        user_id = uuid.uuid4()
        when = created_at or utcnow()
        async with self.engine.begin() as connection:
            await connection.execute(
                insert(User).values(
                    id=user_id,
                    email=(email or unique_email()).lower(),
                    hashed_password=password_hash(),
                    first_name=first_name,
                    last_name=last_name,
                    is_active=is_active,
                    is_superuser=is_superuser,
                    created_at=when,
                    updated_at=when,
                    password_changed_at=when,
                )
            )
        return user_id

    async def login(
        self, email: str, *, client: httpx.AsyncClient | None = None
    ) -> tuple[str, dict[str, Any]]:
        response = await (client or self.client).post(
            f"{API}/auth/login", json={"email": email, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        return body["access_token"], body["user"]

    async def account(
        self,
        *,
        email: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        is_superuser: bool = False,
        client: httpx.AsyncClient | None = None,
    ) -> Account:
        """A user inserted directly and signed in through ``/auth/login``."""
        address = (email or unique_email()).lower()
        await self.user(
            email=address, first_name=first_name, last_name=last_name, is_superuser=is_superuser
        )
        token, user = await self.login(address, client=client)
        return Account(id=uuid.UUID(user["id"]), email=address, access_token=token)

    async def superuser(self, *, client: httpx.AsyncClient | None = None) -> Account:
        return await self.account(email=unique_email("root"), is_superuser=True, client=client)

    async def registered_account(self, *, email: str | None = None) -> Account:
        """A user created through ``/auth/register`` (the public path) and signed in."""
        address = (email or unique_email("registered")).lower()
        response = await self.client.post(
            f"{API}/auth/register", json={"email": address, "password": PASSWORD}
        )
        assert response.status_code == 201, response.text
        token, user = await self.login(address)
        return Account(id=uuid.UUID(user["id"]), email=address, access_token=token)

    # --- organizations -------------------------------------------------------------

    async def organization(
        self, owner: Account, *, name: str | None = None, slug: str | None = None
    ) -> dict[str, Any]:
        """Create an organization over HTTP as ``owner``; returns the 201 body."""
        body: dict[str, Any] = {"name": name or f"Org {uuid.uuid4().hex[:8]}"}
        if slug is not None:
            body["slug"] = slug
        response = await self.client.post(f"{API}/organizations", json=body, headers=owner.headers)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def add_membership(
        self,
        org_id: uuid.UUID,
        user_id: uuid.UUID,
        role: OrgRole | str,
        *,
        joined_at: datetime | None = None,
    ) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                insert(Membership).values(
                    organization_id=org_id,
                    user_id=user_id,
                    role=str(role),
                    joined_at=joined_at or utcnow(),
                )
            )

    async def roled_org(self) -> RoledOrg:
        """An organization with an owner, an admin, a member, and a signed-in outsider."""
        owner = await self.account(first_name="Olive", last_name="Owner")
        admin = await self.account(first_name="Ada", last_name="Admin")
        member = await self.account(first_name="Mo", last_name="Member")
        outsider = await self.account(first_name="Otto", last_name="Outsider")
        org = await self.organization(owner)
        org_id = uuid.UUID(org["id"])
        await self.add_membership(org_id, admin.id, OrgRole.ADMIN)
        await self.add_membership(org_id, member.id, OrgRole.MEMBER)
        return RoledOrg(org_id, org["slug"], owner, admin, member, outsider)

    # --- reading the database ------------------------------------------------------

    async def role_of(self, org_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
        async with self.engine.connect() as connection:
            role = await connection.scalar(
                select(Membership.role).where(
                    Membership.organization_id == org_id, Membership.user_id == user_id
                )
            )
        return str(role) if role is not None else None

    async def roles(self, org_id: uuid.UUID) -> dict[uuid.UUID, str]:
        """Every membership of an organization: user id -> role."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(Membership.user_id, Membership.role).where(
                    Membership.organization_id == org_id
                )
            )
            return {user_id: str(role) for user_id, role in rows.all()}

    async def owner_count(self, org_id: uuid.UUID) -> int:
        return list((await self.roles(org_id)).values()).count("owner")

    async def organization_row(self, org_id: uuid.UUID) -> dict[str, Any] | None:
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(select(Organization).where(Organization.id == org_id))
            ).one_or_none()
        return dict(row._mapping) if row is not None else None

    async def count(self, model: Any, *conditions: Any) -> int:
        async with self.engine.connect() as connection:
            total = await connection.scalar(
                select(func.count()).select_from(model).where(*conditions)
            )
        return int(total or 0)


ADMIN = f"{API}/admin"

__all__ = ["API", "PASSWORD", "USER_KEYS", "assert_error", "bearer", "unique_email"]
