"""The built-in organization roles (docs/API.md); custom roles are rows of
``organization_roles``. Pure, so settings and the permission catalog can use it."""

from __future__ import annotations

import enum


class OrgRole(enum.StrEnum):
    """Roles inside an organization, from most to least privileged."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"

    @property
    def rank(self) -> int:
        return {OrgRole.OWNER: 3, OrgRole.ADMIN: 2, OrgRole.MEMBER: 1}[self]
