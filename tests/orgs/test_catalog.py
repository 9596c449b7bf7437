"""The permission catalog and role resolution (services/permissions.py), cell by cell.

The expected tables are written out by hand from docs/API.md, so a change to the catalog
has to change this file too.
"""

from __future__ import annotations

import pytest

from orgauth import BUILT_IN_PERMISSIONS, OrgPermission
from orgauth.services.permissions import (
    Grant,
    PermissionCatalog,
    may_grant_role,
    may_touch_member,
)

#: docs/API.md: each built-in permission and the built-in roles holding it.
EXPECTED_HOLDERS: dict[str, set[str]] = {
    "organization:read": {"owner", "admin", "member"},
    "organization:update": {"owner", "admin"},
    "organization:delete": {"owner"},
    "members:read": {"owner", "admin", "member"},
    "members:add": {"owner", "admin"},
    "members:update": {"owner", "admin"},
    "members:remove": {"owner", "admin"},
    "invitations:manage": {"owner", "admin"},
    "roles:manage": {"owner", "admin"},
    "api_keys:manage": {"owner", "admin"},
    "audit_logs:read": {"owner", "admin"},
    "webhooks:manage": {"owner", "admin"},
}
ROLES = ("owner", "admin", "member")


def test_the_built_in_permissions_are_exactly_the_documented_ones() -> None:
    assert {p.key for p in BUILT_IN_PERMISSIONS} == set(EXPECTED_HOLDERS)
    assert all(p.description for p in BUILT_IN_PERMISSIONS)


@pytest.mark.parametrize(
    ("permission", "role"),
    [(permission, role) for permission in EXPECTED_HOLDERS for role in ROLES],
)
def test_built_in_role_cell_matches_the_docs(permission: str, role: str) -> None:
    held = PermissionCatalog().role_permissions(role)

    assert (permission in held) is (role in EXPECTED_HOLDERS[permission])


def test_host_permissions_reach_the_built_in_roles_from_their_min_role_up() -> None:
    catalog = PermissionCatalog(
        [
            "billing:manage",
            OrgPermission("projects:read", min_role="member"),
            {"key": "vault:open", "min_role": "owner"},
        ]
    )

    assert {"billing:manage", "projects:read", "vault:open"} <= catalog.role_permissions("owner")
    assert {"billing:manage", "projects:read"} <= catalog.role_permissions("admin")
    assert "vault:open" not in catalog.role_permissions("admin")
    assert catalog.role_permissions("member") == {
        "organization:read",
        "members:read",
        "projects:read",
    }
    # owner ⊇ admin ⊇ member whatever the host adds
    assert catalog.role_permissions("member") <= catalog.role_permissions("admin")
    assert catalog.role_permissions("admin") <= catalog.role_permissions("owner")
    assert catalog.role_permissions("owner") == catalog.keys


def test_catalog_lists_permissions_sorted_by_key() -> None:
    catalog = PermissionCatalog(["zeta:read", "alpha:read"])

    assert list(catalog.permissions) == sorted(catalog.permissions)
    assert catalog.unknown(["alpha:read", "nope:read", "members:read"]) == ["nope:read"]


def test_custom_role_keys_no_longer_in_the_catalog_are_ignored() -> None:
    with_billing = PermissionCatalog(["billing:manage"])
    without = PermissionCatalog()
    stored = ["billing:manage", "members:read"]

    assert with_billing.role_permissions("billing", stored) == {"billing:manage", "members:read"}
    assert without.role_permissions("billing", stored) == {"members:read"}
    assert without.role_permissions("billing", None) == frozenset()


def test_superusers_hold_everything_and_count_as_owners() -> None:
    catalog = PermissionCatalog(["billing:manage"])

    for role in (None, "member", "custom"):
        grant = catalog.grant(role, [], is_superuser=True)
        assert grant is not None
        assert grant.permissions == catalog.keys
        assert grant.owner


def test_strangers_hold_nothing_and_only_the_owner_role_is_owner() -> None:
    catalog = PermissionCatalog()

    assert catalog.grant(None, None, is_superuser=False) is None
    owner, admin = (
        catalog.grant("owner", None, is_superuser=False),
        catalog.grant("admin", None, is_superuser=False),
    )
    custom = catalog.grant("everything", sorted(catalog.keys), is_superuser=False)
    assert owner is not None
    assert owner.owner
    assert admin is not None
    assert not admin.owner
    assert custom is not None
    assert not custom.owner


def test_granting_owner_needs_an_owner_and_other_roles_need_a_superset() -> None:
    catalog = PermissionCatalog()
    owner_set = catalog.role_permissions("owner")
    custom_everything = Grant("everything", owner_set, owner=False)
    admin = Grant("admin", catalog.role_permissions("admin"))

    assert not may_grant_role(custom_everything, "owner", owner_set)
    assert may_grant_role(Grant("owner", owner_set, owner=True), "owner", owner_set)
    assert may_grant_role(admin, "admin", catalog.role_permissions("admin"))
    assert may_grant_role(admin, "readers", frozenset({"organization:read"}))
    assert not may_grant_role(admin, "deleters", frozenset({"organization:delete"}))
    assert not may_touch_member(admin, "owner", owner_set)
    assert may_touch_member(admin, "member", catalog.role_permissions("member"))
