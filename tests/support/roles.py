"""Helpers for the role and permission tests: the built-in permission sets written out by
hand from docs/API.md, and calls that create roles and hand them out over HTTP."""

from __future__ import annotations

import uuid
from typing import Any, Protocol

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from orgauth.models import OrganizationRole
from tests.support.orgs import Account

#: docs/API.md: every built-in permission, sorted (what owners hold).
BUILT_IN_PERMISSIONS = [
    "api_keys:manage",
    "audit_logs:read",
    "invitations:manage",
    "members:add",
    "members:read",
    "members:remove",
    "members:update",
    "organization:delete",
    "organization:read",
    "organization:update",
    "roles:manage",
    "webhooks:manage",
]
ADMIN_PERMISSIONS = [p for p in BUILT_IN_PERMISSIONS if p != "organization:delete"]
MEMBER_PERMISSIONS = ["members:read", "organization:read"]


class OwnedOrg(Protocol):
    """An organization's URL and its owner (``RoledOrg`` and the like)."""

    @property
    def url(self) -> str: ...

    @property
    def owner(self) -> Account: ...


def role_body(key: str, permissions: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    """A role-creation body; ``organization:read`` only unless told otherwise."""
    body: dict[str, Any] = {
        "key": key,
        "name": fields.pop("name", key.title()),
        "permissions": permissions if permissions is not None else ["organization:read"],
    }
    body.update(fields)
    return body


async def create_role(
    client: httpx.AsyncClient,
    org: OwnedOrg,
    key: str,
    permissions: list[str] | None = None,
    *,
    by: Account | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Create a custom role (as the owner unless ``by``); returns the 201 body."""
    response = await client.post(
        f"{org.url}/roles",
        json=role_body(key, permissions, **fields),
        headers=(by or org.owner).headers,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def set_role_permissions(
    client: httpx.AsyncClient, org: OwnedOrg, key: str, permissions: list[str]
) -> None:
    """The owner replaces a custom role's permissions."""
    response = await client.patch(
        f"{org.url}/roles/{key}", json={"permissions": permissions}, headers=org.owner.headers
    )
    assert response.status_code == 200, response.text


async def set_member_role(
    client: httpx.AsyncClient, org: OwnedOrg, user_id: uuid.UUID, role: str
) -> None:
    """The owner gives a member another role."""
    response = await client.patch(
        f"{org.url}/members/{user_id}", json={"role": role}, headers=org.owner.headers
    )
    assert response.status_code == 200, response.text


async def role_rows(engine: AsyncEngine, org_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    """The organization's custom roles as stored: key -> columns."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(
                col(OrganizationRole.key),
                col(OrganizationRole.name),
                col(OrganizationRole.description),
                col(OrganizationRole.permissions),
                col(OrganizationRole.created_at),
                col(OrganizationRole.updated_at),
            ).where(col(OrganizationRole.organization_id) == org_id)
        )
        return {
            key: {
                "name": name,
                "description": description,
                "permissions": list(permissions),
                "created_at": created_at,
                "updated_at": updated_at,
            }
            for key, name, description, permissions, created_at, updated_at in rows.all()
        }
