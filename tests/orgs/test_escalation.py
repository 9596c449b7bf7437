"""The escalation rules of docs/SECURITY.md, attacked with custom roles.

Nobody hands out, edits or touches more than they hold: granting a role needs every
permission it has (``owner`` needs an owner), changing or removing a member needs every
permission of their current role (an owner's needs an owner), creating or updating a role
needs every permission of the new set, and updating or deleting one needs every permission
of the current set. Role keys belong to one organization. Every refusal is checked to leave
the memberships and the role rows exactly as they were.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.orgs import API, Account, Factory, RoledOrg, assert_error
from tests.support.roles import ADMIN_PERMISSIONS, BUILT_IN_PERMISSIONS, role_rows

DENIED = (403, "INSUFFICIENT_ROLE")

Snapshot = tuple[dict[uuid.UUID, str], dict[str, dict[str, Any]]]


async def snapshot(factory: Factory, org_id: uuid.UUID) -> Snapshot:
    """The organization's memberships and custom role rows."""
    return await factory.roles(org_id), await role_rows(factory.engine, org_id)


@dataclass
class Scene:
    """A roled organization whose owner creates custom roles and hands them out."""

    client: httpx.AsyncClient
    factory: Factory
    org: RoledOrg

    async def role(self, key: str, permissions: list[str], *, by: Account | None = None) -> None:
        response = await self.client.post(
            f"{self.org.url}/roles",
            json={"key": key, "name": key.title(), "permissions": permissions},
            headers=(by or self.org.owner).headers,
        )
        assert response.status_code == 201, response.text

    async def holder(self, key: str) -> Account:
        """A new signed-in member holding the role ``key``."""
        account = await self.factory.account()
        await self.factory.add_membership(self.org.id, account.id, key)
        return account

    async def call(
        self, caller: Account, method: str, path: str, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        return await self.client.request(
            method, f"{self.org.url}{path}", json=body, headers=caller.headers
        )

    async def refused(
        self, caller: Account, method: str, path: str, body: dict[str, Any] | None = None
    ) -> None:
        """The call is 403 INSUFFICIENT_ROLE and changes nothing."""
        before = await snapshot(self.factory, self.org.id)
        response = await self.call(caller, method, path, body)
        assert response.status_code == 403, (method, path, body, response.text)
        assert_error(response, *DENIED)
        assert await snapshot(self.factory, self.org.id) == before, (method, path, body)

    async def allowed(
        self, caller: Account, method: str, path: str, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        response = await self.call(caller, method, path, body)
        assert response.status_code < 300, (method, path, body, response.text)
        return response

    def add(self, user: Account, role: str) -> tuple[str, str, dict[str, Any]]:
        return "POST", "/members", {"user_id": str(user.id), "role": role}

    def change(self, user: Account, role: str) -> tuple[str, str, dict[str, Any]]:
        return "PATCH", f"/members/{user.id}", {"role": role}

    def remove(self, user: Account) -> tuple[str, str]:
        return "DELETE", f"/members/{user.id}"


@pytest.fixture
async def scene(client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg) -> Scene:
    return Scene(client, factory, roled_org)


# --- roles: creating and editing within what you hold -------------------------------------


async def test_admin_cannot_create_or_extend_a_role_with_organization_delete(
    scene: Scene,
) -> None:
    admin = scene.org.admin
    for permissions in (["organization:delete"], [*ADMIN_PERMISSIONS, "organization:delete"]):
        await scene.refused(
            admin,
            "POST",
            "/roles",
            {"key": "usurper", "name": "Usurper", "permissions": permissions},
        )
    # Within what an admin holds, the same admin may create and then edit a role...
    await scene.role("deputy", ADMIN_PERMISSIONS, by=admin)
    await scene.allowed(admin, "PATCH", "/roles/deputy", {"permissions": ["organization:read"]})
    # ...but not push it past that.
    await scene.refused(
        admin,
        "PATCH",
        "/roles/deputy",
        {"permissions": ["organization:read", "organization:delete"]},
    )


async def test_roles_manager_cannot_add_to_their_own_role_what_they_lack(scene: Scene) -> None:
    await scene.role("curator", ["organization:read", "roles:manage"])
    curator = await scene.holder("curator")
    await scene.refused(
        curator,
        "PATCH",
        "/roles/curator",
        {"permissions": ["members:read", "organization:read", "roles:manage"]},
    )
    await scene.refused(
        curator, "POST", "/roles", {"key": "adder", "name": "Adder", "permissions": ["members:add"]}
    )
    # Giving something up is allowed, and it takes effect at once.
    shrunk = await scene.allowed(
        curator, "PATCH", "/roles/curator", {"permissions": ["roles:manage"]}
    )
    assert shrunk.json()["permissions"] == ["roles:manage"]
    await scene.refused(
        curator, "PATCH", "/roles/curator", {"permissions": ["organization:read", "roles:manage"]}
    )


async def test_updating_or_deleting_a_role_beyond_the_caller_is_refused(scene: Scene) -> None:
    await scene.role("deleter", ["organization:delete", "organization:read"])
    await scene.role("reader", ["members:read", "organization:read"])
    await scene.role("curator", ["organization:read", "roles:manage"])
    curator = await scene.holder("curator")
    for caller, key in ((scene.org.admin, "deleter"), (curator, "reader")):
        # Even taking permissions away, or only renaming, needs the role's current set.
        await scene.refused(caller, "PATCH", f"/roles/{key}", {"name": "Mine"})
        await scene.refused(caller, "PATCH", f"/roles/{key}", {"permissions": []})
        await scene.refused(caller, "PATCH", f"/roles/{key}", {"description": None})
        await scene.refused(caller, "DELETE", f"/roles/{key}")
    await scene.allowed(scene.org.admin, "PATCH", "/roles/reader", {"name": "Readers"})
    await scene.allowed(scene.org.owner, "DELETE", "/roles/deleter")


# --- granting roles ----------------------------------------------------------------------


async def test_admin_cannot_grant_a_custom_role_holding_organization_delete(
    scene: Scene,
) -> None:
    await scene.role("deleter", ["organization:delete", "organization:read"])
    org = scene.org
    await scene.refused(org.admin, *scene.add(org.outsider, "deleter"))
    await scene.refused(org.admin, *scene.change(org.member, "deleter"))
    await scene.refused(org.admin, *scene.change(org.admin, "deleter"))
    added = await scene.allowed(org.owner, *scene.add(org.outsider, "deleter"))
    assert added.json()["role"] == "deleter"


async def test_members_manager_cannot_grant_admin_when_their_role_holds_less(
    scene: Scene,
) -> None:
    await scene.role(
        "recruiter", ["members:add", "members:read", "members:update", "organization:read"]
    )
    recruiter = await scene.holder("recruiter")
    org = scene.org
    for role in ("admin", "owner"):
        await scene.refused(recruiter, *scene.add(org.outsider, role))
        await scene.refused(recruiter, *scene.change(org.member, role))
        await scene.refused(recruiter, *scene.change(recruiter, role))
    # Roles within their own set are theirs to hand out.
    await scene.allowed(recruiter, *scene.add(org.outsider, "recruiter"))
    await scene.allowed(recruiter, *scene.change(org.outsider, "member"))
    assert await scene.factory.role_of(org.id, org.outsider.id) == "member"


async def test_granting_owner_needs_an_owner_even_with_every_permission(scene: Scene) -> None:
    await scene.role("almighty", BUILT_IN_PERMISSIONS)
    almighty = await scene.holder("almighty")
    org = scene.org
    await scene.refused(almighty, *scene.add(org.outsider, "owner"))
    await scene.refused(almighty, *scene.change(org.member, "owner"))
    await scene.refused(almighty, *scene.change(almighty, "owner"))
    # Everything below owner is theirs to grant.
    await scene.allowed(almighty, *scene.change(org.member, "admin"))
    await scene.allowed(almighty, *scene.add(org.outsider, "almighty"))


async def test_a_superuser_who_is_not_a_member_grants_owner(
    scene: Scene, superuser: Account
) -> None:
    org = scene.org
    added = await scene.allowed(superuser, *scene.add(org.outsider, "owner"))
    assert added.json()["role"] == "owner"
    await scene.allowed(superuser, *scene.change(org.owner, "member"))
    assert await scene.factory.owner_count(org.id) == 1


# --- touching members --------------------------------------------------------------------


async def test_custom_roles_cannot_change_or_remove_an_owner(scene: Scene) -> None:
    await scene.role("almighty", BUILT_IN_PERMISSIONS)
    almighty = await scene.holder("almighty")
    second_owner = await scene.holder("owner")
    for owner in (scene.org.owner, second_owner):
        for role in ("admin", "member", "almighty", "owner"):
            await scene.refused(almighty, *scene.change(owner, role))
        await scene.refused(almighty, *scene.remove(owner))


async def test_custom_roles_cannot_touch_a_member_whose_role_holds_more(scene: Scene) -> None:
    await scene.role(
        "bouncer",
        ["members:read", "members:remove", "members:update", "organization:read"],
    )
    await scene.role("auditor", ["audit_logs:read", "organization:read"])
    bouncer = await scene.holder("bouncer")
    auditor = await scene.holder("auditor")
    org = scene.org
    for target in (org.admin, auditor):
        await scene.refused(bouncer, *scene.change(target, "member"))
        await scene.refused(bouncer, *scene.remove(target))
    # A member's role is within theirs: changing and removing are allowed.
    await scene.allowed(bouncer, *scene.change(org.member, "bouncer"))
    await scene.allowed(bouncer, *scene.remove(org.member))
    assert await scene.factory.role_of(org.id, org.member.id) is None


async def test_admin_cannot_touch_a_member_holding_a_custom_role_beyond_admin(
    scene: Scene,
) -> None:
    await scene.role("deleter", ["organization:delete", "organization:read"])
    deleter = await scene.holder("deleter")
    await scene.refused(scene.org.admin, *scene.change(deleter, "member"))
    await scene.refused(scene.org.admin, *scene.remove(deleter))
    await scene.allowed(scene.org.owner, *scene.change(deleter, "member"))


# --- the owner-only and permission-free actions ------------------------------------------


async def test_every_admin_permission_in_a_custom_role_still_cannot_delete_the_organization(
    scene: Scene,
) -> None:
    await scene.role("deputy", ADMIN_PERMISSIONS)
    deputy = await scene.holder("deputy")
    await scene.refused(deputy, "DELETE", "")
    assert await scene.factory.organization_row(scene.org.id) is not None
    # Everything else an admin may do, the deputy may do.
    await scene.allowed(deputy, "PATCH", "", {"name": "Renamed by the deputy"})
    await scene.allowed(deputy, *scene.change(scene.org.admin, "deputy"))


async def test_a_custom_role_holding_organization_delete_may_delete_it(scene: Scene) -> None:
    await scene.role("deleter", ["organization:delete"])
    deleter = await scene.holder("deleter")
    response = await scene.call(deleter, "DELETE", "")
    assert response.status_code == 204, response.text
    assert await scene.factory.organization_row(scene.org.id) is None


async def test_leaving_needs_no_permission(scene: Scene) -> None:
    await scene.role("nobody", [])
    nobody = await scene.holder("nobody")
    await scene.refused(nobody, "GET", "")
    await scene.refused(nobody, "GET", "/members")
    await scene.refused(nobody, *scene.remove(scene.org.member))
    left = await scene.call(nobody, *scene.remove(nobody))
    assert left.status_code == 204, left.text
    assert await scene.factory.role_of(scene.org.id, nobody.id) is None
    assert_error(await scene.call(nobody, "GET", ""), 404, "ORGANIZATION_NOT_FOUND")


# --- role keys belong to one organization -------------------------------------------------


async def test_role_keys_of_another_organization_mean_nothing_here(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg, db: AsyncEngine
) -> None:
    a = roled_org
    b = await factory.roled_org()
    a_scene, b_scene = Scene(client, factory, a), Scene(client, factory, b)
    await a_scene.role("secret", BUILT_IN_PERMISSIONS)
    a_holder = await a_scene.holder("secret")
    before_a = await snapshot(factory, a.id)
    before_b = await snapshot(factory, b.id)

    for caller in (b.owner, a_holder):
        # a_holder is not in B: 404 before anything else; B's owner: the key is unknown.
        expected = (404, "ORGANIZATION_NOT_FOUND") if caller is a_holder else None
        for method, path, body, error in (
            ("POST", "/members", {"user_id": str(b.outsider.id), "role": "secret"}, "UNKNOWN_ROLE"),
            ("PATCH", f"/members/{b.member.id}", {"role": "secret"}, "UNKNOWN_ROLE"),
            ("PATCH", "/roles/secret", {"name": "Mine"}, "ROLE_NOT_FOUND"),
            ("PATCH", "/roles/secret", {"permissions": []}, "ROLE_NOT_FOUND"),
            ("DELETE", "/roles/secret", None, "ROLE_NOT_FOUND"),
        ):
            response = await b_scene.call(caller, method, path, body)
            status = 422 if error == "UNKNOWN_ROLE" else 404
            assert_error(response, *(expected or (status, error)))
        listed = await client.get(
            f"{b.url}/members", params={"role": "secret"}, headers=caller.headers
        )
        assert_error(listed, *(expected or (422, "UNKNOWN_ROLE")))

    assert await snapshot(factory, a.id) == before_a
    assert await snapshot(factory, b.id) == before_b
    roles = await client.get(f"{b.url}/roles", headers=b.owner.headers)
    assert "secret" not in {role["key"] for role in roles.json()}


async def test_a_membership_naming_another_organizations_role_grants_nothing(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    """Should a membership ever name a key that only another organization defines, it
    resolves against its own organization's roles: no permissions at all."""
    a = roled_org
    b = await factory.roled_org()
    await Scene(client, factory, a).role("secret", BUILT_IN_PERMISSIONS)
    b_scene = Scene(client, factory, b)
    stray = await b_scene.holder("secret")
    await b_scene.refused(stray, "GET", "")
    await b_scene.refused(stray, "PATCH", "", {"name": "Taken over"})
    await b_scene.refused(stray, *b_scene.change(b.member, "admin"))
    await b_scene.refused(stray, "DELETE", "")
    mine = await client.get(f"{API}/organizations/me", headers=stray.headers)
    assert [(o["id"], o["role"], o["permissions"]) for o in mine.json()] == [
        (str(b.id), "secret", [])
    ]


@pytest.mark.parametrize("key", ["a\x00b", "Owner", "r\u00e9le", "x y", "-lead"])
async def test_malformed_role_keys_are_unknown_not_server_errors(
    client: httpx.AsyncClient, roled_org: RoledOrg, key: str
) -> None:
    """Keys no role can have answer like unknown ones on every route that takes a key
    (a NUL once reached PostgreSQL, which refuses it)."""
    owner = roled_org.owner.headers
    listed = await client.get(f"{roled_org.url}/members", params={"role": key}, headers=owner)
    assert_error(listed, 422, "UNKNOWN_ROLE")
    added = await client.post(
        f"{roled_org.url}/members",
        json={"user_id": str(roled_org.outsider.id), "role": key},
        headers=owner,
    )
    assert_error(added, 422, "UNKNOWN_ROLE")
    changed = await client.patch(
        roled_org.member_url(roled_org.member.id), json={"role": key}, headers=owner
    )
    assert_error(changed, 422, "UNKNOWN_ROLE")
    path = f"{roled_org.url}/roles/{quote(key, safe='')}"
    patched = await client.patch(path, json={"name": "X"}, headers=owner)
    assert_error(patched, 404, "ROLE_NOT_FOUND")
    assert_error(await client.delete(path, headers=owner), 404, "ROLE_NOT_FOUND")
