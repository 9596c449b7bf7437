"""Organization API keys: creating, listing and revoking them (docs/API.md, "API keys").

A key is shown once, at creation; the database keeps its SHA-256 and its first 12
characters. Its permissions are a subset of its creator's at creation (escalation rule
5), and at most 100 active keys exist per organization.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from orgauth import events
from orgauth.data import api_keys as key_data
from orgauth.data.statements import Statements
from orgauth.errors import ConflictError, ErrorCode, NotFoundError
from orgauth.events import record
from orgauth.models import OrganizationApiKey, utcnow
from orgauth.representations import api_key_read, as_data
from orgauth.security.api_keys import api_key_hash, is_well_formed, key_start, new_api_key
from orgauth.services.organizations import Actor, acting_grant, lock_organization, org_not_found
from orgauth.services.permissions import (
    Grant,
    PermissionCatalog,
    checked_permissions,
    require_permission,
)

MANAGE = "api_keys:manage"
MAX_ACTIVE_KEYS = 100
DEFAULT_EXPIRE_DAYS = 90

#: ``last_used_at`` is written at most this often.
KEY_TOUCH_INTERVAL = timedelta(minutes=1)

KEY_ACTIVE = "active"
KEY_EXPIRED = "expired"
KEY_REVOKED = "revoked"


def key_is_active(now: datetime) -> ColumnElement[bool]:
    """The one predicate of a usable key: not revoked, not expired."""
    return and_(
        col(OrganizationApiKey.revoked_at).is_(None), col(OrganizationApiKey.expires_at) > now
    )


@dataclass(frozen=True)
class ApiKeyView:
    """A key as the API shows it, with its status now."""

    key: OrganizationApiKey
    status: str

    @classmethod
    def of(cls, key: OrganizationApiKey, now: datetime) -> ApiKeyView:
        if key.revoked_at is not None:
            return cls(key, KEY_REVOKED)
        return cls(key, KEY_EXPIRED if key.expires_at <= now else KEY_ACTIVE)


@dataclass(frozen=True)
class CreatedKey:
    view: ApiKeyView
    key: str  # the plaintext: only in the create answer


@dataclass(frozen=True)
class KeyPrincipal:
    """A request authenticated with an API key: the key, its organization, its creator
    and what it holds there now (the key's permissions within the creator's)."""

    key_id: uuid.UUID
    organization_id: uuid.UUID
    creator_id: uuid.UUID
    grant: Grant

    def __repr__(self) -> str:
        return f"KeyPrincipal(key_id={self.key_id}, organization_id={self.organization_id})"


async def authenticate_key(
    statements: Statements, catalog: PermissionCatalog, key: str
) -> KeyPrincipal | None:
    """The principal of a presented key, or None (malformed or forged: no lookup at all;
    unknown, revoked, expired, or a creator who is neither an active member of the key's
    organization nor an active superuser). One indexed query; ``last_used_at`` is written
    at most once a minute."""
    if not is_well_formed(key):
        return None
    row = await key_data.find_key(statements, key_hash=api_key_hash(key))
    if row is None or row["revoked_at"] is not None or row["created_by"] is None:
        return None
    now = utcnow()
    if row["expires_at"] <= now or not row["creator_is_active"]:
        return None
    creator = catalog.grant(
        row["creator_role"],
        row["creator_role_permissions"],
        is_superuser=bool(row["creator_is_superuser"]),
    )
    if creator is None:  # no longer a member: nobody keeps access through a key
        return None
    held = frozenset(row["permissions"]) & creator.permissions & catalog.keys
    last_used = row["last_used_at"]
    if last_used is None or now - last_used >= KEY_TOUCH_INTERVAL:
        await key_data.touch_key(statements, key_id=row["id"], now=now)
    return KeyPrincipal(
        key_id=row["id"],
        organization_id=row["organization_id"],
        creator_id=row["created_by"],
        grant=Grant(None, held),  # a key is never an owner
    )


def api_key_not_found() -> NotFoundError:
    return NotFoundError("API key not found.", code=ErrorCode.API_KEY_NOT_FOUND)


def _payload(view: ApiKeyView) -> dict[str, Any]:
    return {"api_key": as_data(api_key_read(view))}


async def create_api_key(
    db: AsyncSession,
    actor: Actor,
    org_id: uuid.UUID,
    *,
    name: str,
    permissions: list[str],
    expires_in_days: int | None,
) -> CreatedKey:
    """A new key holding ``permissions`` (each in the catalog, 422, and held by the
    caller, 403), valid for ``expires_in_days`` (default 90)."""
    if not await lock_organization(db, org_id):
        raise org_not_found()
    grant = await acting_grant(db, actor, org_id)
    require_permission(grant, MANAGE)
    keys = checked_permissions(actor.catalog, grant, permissions)
    now = utcnow()
    active = await db.scalar(
        select(func.count()).where(
            col(OrganizationApiKey.organization_id) == org_id, key_is_active(now)
        )
    )
    if int(active or 0) >= MAX_ACTIVE_KEYS:
        raise ConflictError(
            f"An organization can have at most {MAX_ACTIVE_KEYS} active API keys.",
            code=ErrorCode.API_KEY_LIMIT_REACHED,
        )
    plaintext = new_api_key()
    row = OrganizationApiKey(
        organization_id=org_id,
        name=name,
        start=key_start(plaintext),
        key_hash=api_key_hash(plaintext),
        permissions=keys,
        created_by=actor.user_id,
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days or DEFAULT_EXPIRE_DAYS),
    )
    db.add(row)
    view = ApiKeyView.of(row, now)
    record(
        db,
        "api_key.created",
        **actor.events(org_id),
        targets=[events.api_key(row.id)],
        data=_payload(view),
        name=name,
        permissions=keys,
    )
    await db.commit()
    return CreatedKey(view, plaintext)


async def list_api_keys(
    db: AsyncSession,
    actor: Actor,
    org_id: uuid.UUID,
    *,
    page: int,
    limit: int,
    status: str | None,
) -> tuple[list[ApiKeyView], int]:
    """The organization's keys, newest first, optionally of one status."""
    require_permission(await acting_grant(db, actor, org_id), MANAGE)
    now = utcnow()
    conditions: list[ColumnElement[bool]] = [col(OrganizationApiKey.organization_id) == org_id]
    if status == KEY_ACTIVE:
        conditions.append(key_is_active(now))
    elif status == KEY_REVOKED:
        conditions.append(col(OrganizationApiKey.revoked_at).is_not(None))
    elif status == KEY_EXPIRED:
        conditions.append(
            and_(
                col(OrganizationApiKey.revoked_at).is_(None),
                col(OrganizationApiKey.expires_at) <= now,
            )
        )
    total = await db.scalar(select(func.count()).select_from(OrganizationApiKey).where(*conditions))
    rows = await db.scalars(
        select(OrganizationApiKey)
        .where(*conditions)
        .order_by(col(OrganizationApiKey.created_at).desc(), col(OrganizationApiKey.id).desc())
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return [ApiKeyView.of(row, now) for row in rows], int(total or 0)


async def revoke_api_key(
    db: AsyncSession, actor: Actor, org_id: uuid.UUID, key_id: uuid.UUID
) -> ApiKeyView:
    """Revoke a key (it only removes access, so any holder of ``api_keys:manage`` may,
    whatever the key holds); a revoked key is answered unchanged."""
    if not await lock_organization(db, org_id):
        raise org_not_found()
    require_permission(await acting_grant(db, actor, org_id), MANAGE)
    row = await db.scalar(
        select(OrganizationApiKey).where(
            col(OrganizationApiKey.id) == key_id,
            col(OrganizationApiKey.organization_id) == org_id,
        )
    )
    if row is None:
        raise api_key_not_found()
    now = utcnow()
    if row.revoked_at is None:
        row.revoked_at = now
        view = ApiKeyView.of(row, now)
        record(
            db,
            "api_key.revoked",
            **actor.events(org_id),
            targets=[events.api_key(row.id)],
            data=_payload(view),
            name=row.name,
            permissions=row.permissions,
        )
    view = ApiKeyView.of(row, now)
    await db.commit()
    return view
