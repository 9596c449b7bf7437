"""API keys in the database: the per-request lookup and the throttled ``last_used_at``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, select, update

from orgauth.data.statements import FixedStatement, Statements
from orgauth.models import Membership, OrganizationApiKey, OrganizationRole, User

_keys = OrganizationApiKey.__table__  # type: ignore[attr-defined]
_users = User.__table__  # type: ignore[attr-defined]
_members = Membership.__table__  # type: ignore[attr-defined]
_roles = OrganizationRole.__table__  # type: ignore[attr-defined]

# The per-request check of a key: the unique key_hash index, joined with everything the
# permission check needs (the creator, their membership of the key's organization and
# that membership's custom role), in one round trip.
_AUTHENTICATE = FixedStatement(
    select(
        _keys.c.id,
        _keys.c.organization_id,
        _keys.c.permissions,
        _keys.c.created_by,
        _keys.c.expires_at,
        _keys.c.revoked_at,
        _keys.c.last_used_at,
        _users.c.is_active.label("creator_is_active"),
        _users.c.is_superuser.label("creator_is_superuser"),
        _members.c.role.label("creator_role"),
        _roles.c.permissions.label("creator_role_permissions"),
    )
    .select_from(
        _keys.outerjoin(_users, _users.c.id == _keys.c.created_by)
        .outerjoin(
            _members,
            and_(
                _members.c.organization_id == _keys.c.organization_id,
                _members.c.user_id == _keys.c.created_by,
            ),
        )
        .outerjoin(
            _roles,
            and_(
                _roles.c.organization_id == _members.c.organization_id,
                _roles.c.key == _members.c.role,
            ),
        )
    )
    .where(_keys.c.key_hash == bindparam("key_hash"))
)
_TOUCH = FixedStatement(
    update(_keys).where(_keys.c.id == bindparam("key_id")).values(last_used_at=bindparam("now"))
)


async def find_key(statements: Statements, *, key_hash: str) -> Mapping[str, Any] | None:
    """The key with that hash and what its creator holds in its organization, or None."""
    return await statements.first(_AUTHENTICATE, {"key_hash": key_hash})


async def touch_key(statements: Statements, *, key_id: uuid.UUID, now: datetime) -> None:
    """Record that the key was just used."""
    await statements.execute(_TOUCH, {"key_id": key_id, "now": now})
