"""The organization permission matrix (services/permissions.py), cell by cell, and the same
matrix seen through HTTP for each kind of actor.

The expected tables below are written out by hand from docs/API.md rather than derived from
the module under test, so a change to the matrix has to change this file too.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from orgauth.errors import ErrorCode, PermissionDeniedError
from orgauth.models import OrgRole
from orgauth.services.permissions import (
    ACTION_ROLES,
    GRANTABLE_ROLES,
    MANAGEABLE_ROLES,
    OrgAction,
    authorize,
    effective_role,
    is_allowed,
    role_at_least,
)
from tests.support.orgs import API, Account, Factory, RoledOrg, assert_error

OWNER, ADMIN, MEMBER = OrgRole.OWNER, OrgRole.ADMIN, OrgRole.MEMBER
ROLES = (OWNER, ADMIN, MEMBER)

#: docs/API.md: who may perform each action at all.
EXPECTED_ACTION_ROLES: dict[OrgAction, set[OrgRole]] = {
    OrgAction.VIEW: {OWNER, ADMIN, MEMBER},
    OrgAction.LIST_MEMBERS: {OWNER, ADMIN, MEMBER},
    OrgAction.UPDATE: {OWNER, ADMIN},
    OrgAction.CHANGE_SLUG: {OWNER, ADMIN},
    OrgAction.DELETE: {OWNER},
    OrgAction.ADD_MEMBER: {OWNER, ADMIN},
    OrgAction.CHANGE_ROLE: {OWNER, ADMIN},
    OrgAction.REMOVE_MEMBER: {OWNER, ADMIN},
    OrgAction.LEAVE: {OWNER, ADMIN, MEMBER},
}
#: Only owners grant ``owner``; members grant nothing.
EXPECTED_GRANTABLE: dict[OrgRole, set[OrgRole]] = {
    OWNER: {OWNER, ADMIN, MEMBER},
    ADMIN: {ADMIN, MEMBER},
    MEMBER: set(),
}
#: Admins may not change or remove an owner; members manage nobody.
EXPECTED_MANAGEABLE: dict[OrgRole, set[OrgRole]] = {
    OWNER: {OWNER, ADMIN, MEMBER},
    ADMIN: {ADMIN, MEMBER},
    MEMBER: set(),
}


def _cells(table: dict[Any, set[OrgRole]], keys: Any) -> list[Any]:
    return [
        pytest.param(key, role, role in table[key], id=f"{key}-{role}")
        for key in keys
        for role in ROLES
    ]


def _assert_authorize(allowed: bool, call: Callable[[], None]) -> None:
    if allowed:
        call()
        return
    with pytest.raises(PermissionDeniedError) as raised:
        call()
    assert raised.value.code is ErrorCode.INSUFFICIENT_ROLE
    assert raised.value.status_code == 403


# --- unit level: one test per cell -------------------------------------------------------


def test_matrix_covers_every_action_and_role() -> None:
    assert set(ACTION_ROLES) == set(OrgAction)
    assert set(GRANTABLE_ROLES) == set(OrgRole)
    assert set(MANAGEABLE_ROLES) == set(OrgRole)


@pytest.mark.parametrize(("action", "role", "allowed"), _cells(EXPECTED_ACTION_ROLES, OrgAction))
def test_action_cell_matches_spec(action: OrgAction, role: OrgRole, allowed: bool) -> None:
    assert (role in ACTION_ROLES[action]) is allowed
    assert is_allowed(role, action) is allowed
    _assert_authorize(allowed, lambda: authorize(role, action))


@pytest.mark.parametrize(
    ("actor", "new_role", "allowed"),
    [
        pytest.param(
            actor, new_role, new_role in EXPECTED_GRANTABLE[actor], id=f"{actor}-{new_role}"
        )
        for actor in ROLES
        for new_role in ROLES
    ],
)
def test_grantable_cell_matches_spec(actor: OrgRole, new_role: OrgRole, allowed: bool) -> None:
    assert (new_role in GRANTABLE_ROLES[actor]) is allowed
    for action in (OrgAction.ADD_MEMBER, OrgAction.CHANGE_ROLE):
        assert is_allowed(actor, action, new_role=new_role) is allowed
        _assert_authorize(allowed, lambda a=action: authorize(actor, a, new_role=new_role))


@pytest.mark.parametrize(
    ("actor", "target", "allowed"),
    [
        pytest.param(actor, target, target in EXPECTED_MANAGEABLE[actor], id=f"{actor}-{target}")
        for actor in ROLES
        for target in ROLES
    ],
)
def test_manageable_cell_matches_spec(actor: OrgRole, target: OrgRole, allowed: bool) -> None:
    assert (target in MANAGEABLE_ROLES[actor]) is allowed
    for action in (OrgAction.CHANGE_ROLE, OrgAction.REMOVE_MEMBER):
        assert is_allowed(actor, action, target_role=target) is allowed
        _assert_authorize(allowed, lambda a=action: authorize(actor, a, target_role=target))


@pytest.mark.parametrize("role", ROLES)
def test_leaving_is_allowed_for_every_role_whatever_the_target(role: OrgRole) -> None:
    assert is_allowed(role, OrgAction.LEAVE, target_role=OWNER)
    authorize(role, OrgAction.LEAVE, target_role=OWNER)


def test_admin_may_not_demote_an_owner_even_to_a_grantable_role() -> None:
    assert not is_allowed(ADMIN, OrgAction.CHANGE_ROLE, target_role=OWNER, new_role=MEMBER)
    assert is_allowed(ADMIN, OrgAction.CHANGE_ROLE, target_role=MEMBER, new_role=ADMIN)
    assert not is_allowed(ADMIN, OrgAction.CHANGE_ROLE, target_role=MEMBER, new_role=OWNER)


@pytest.mark.parametrize("role", [*ROLES, None])
def test_superusers_act_as_owners_whatever_their_membership(role: OrgRole | None) -> None:
    assert effective_role(role, is_superuser=True) is OWNER


@pytest.mark.parametrize("role", ROLES)
def test_regular_users_act_with_their_own_role(role: OrgRole) -> None:
    assert effective_role(str(role), is_superuser=False) is role


def test_non_members_have_no_role() -> None:
    assert effective_role(None, is_superuser=False) is None


@pytest.mark.parametrize(
    ("actual", "required", "passes"),
    [
        (actual, required, ROLES.index(actual) <= ROLES.index(required))
        for actual in ROLES
        for required in ROLES
    ],
)
def test_role_hierarchy_is_owner_over_admin_over_member(
    actual: OrgRole, required: OrgRole, passes: bool
) -> None:
    assert role_at_least(actual, required) is passes


# --- HTTP level: each actor against each action ------------------------------------------


@dataclass(frozen=True)
class Scene:
    """An organization with a co-owner, a target member and a candidate who is not in it."""

    org: RoledOrg
    co_owner: Account
    target: Account
    candidate: Account
    superuser: Account

    def actor(self, name: str) -> Account:
        if name == "superuser":
            return self.superuser
        return self.org.by_role(name)


@dataclass(frozen=True)
class Call:
    method: str
    path: Callable[[Scene, Account], str]
    body: Callable[[Scene], dict[str, Any]] | None = None


CALLS: dict[str, Call] = {
    "view": Call("GET", lambda s, a: s.org.url),
    "list_members": Call("GET", lambda s, a: f"{s.org.url}/members"),
    "update": Call("PATCH", lambda s, a: s.org.url, lambda s: {"name": "Renamed"}),
    "change_slug": Call(
        "PATCH", lambda s, a: s.org.url, lambda s: {"slug": f"renamed-{uuid.uuid4().hex[:6]}"}
    ),
    "delete": Call("DELETE", lambda s, a: s.org.url),
    "add_member": Call(
        "POST",
        lambda s, a: f"{s.org.url}/members",
        lambda s: {"user_id": str(s.candidate.id), "role": "member"},
    ),
    "add_owner": Call(
        "POST",
        lambda s, a: f"{s.org.url}/members",
        lambda s: {"user_id": str(s.candidate.id), "role": "owner"},
    ),
    "promote_member_to_admin": Call(
        "PATCH", lambda s, a: s.org.member_url(s.target.id), lambda s: {"role": "admin"}
    ),
    "promote_member_to_owner": Call(
        "PATCH", lambda s, a: s.org.member_url(s.target.id), lambda s: {"role": "owner"}
    ),
    "demote_owner": Call(
        "PATCH", lambda s, a: s.org.member_url(s.co_owner.id), lambda s: {"role": "admin"}
    ),
    "remove_member": Call("DELETE", lambda s, a: s.org.member_url(s.target.id)),
    "remove_owner": Call("DELETE", lambda s, a: s.org.member_url(s.co_owner.id)),
    "leave": Call("DELETE", lambda s, a: s.org.member_url(a.id)),
}

DENIED = (403, "INSUFFICIENT_ROLE")
#: action -> actor -> status (or (status, code) for an error).
HTTP_EXPECTATIONS: dict[str, dict[str, int | tuple[int, str]]] = {
    "view": {"owner": 200, "admin": 200, "member": 200, "superuser": 200},
    "list_members": {"owner": 200, "admin": 200, "member": 200, "superuser": 200},
    "update": {"owner": 200, "admin": 200, "member": DENIED, "superuser": 200},
    "change_slug": {"owner": 200, "admin": 200, "member": DENIED, "superuser": 200},
    "delete": {"owner": 204, "admin": DENIED, "member": DENIED, "superuser": 204},
    "add_member": {"owner": 201, "admin": 201, "member": DENIED, "superuser": 201},
    "add_owner": {"owner": 201, "admin": DENIED, "member": DENIED, "superuser": 201},
    "promote_member_to_admin": {"owner": 200, "admin": 200, "member": DENIED, "superuser": 200},
    "promote_member_to_owner": {"owner": 200, "admin": DENIED, "member": DENIED, "superuser": 200},
    "demote_owner": {"owner": 200, "admin": DENIED, "member": DENIED, "superuser": 200},
    "remove_member": {"owner": 204, "admin": 204, "member": DENIED, "superuser": 204},
    "remove_owner": {"owner": 204, "admin": DENIED, "member": DENIED, "superuser": 204},
    # A superuser who is not a member has no membership to leave.
    "leave": {"owner": 204, "admin": 204, "member": 204, "superuser": (404, "MEMBER_NOT_FOUND")},
}


@pytest.fixture
async def scene(factory: Factory, roled_org: RoledOrg) -> Scene:
    co_owner = await factory.account(first_name="Cora", last_name="Coowner")
    target = await factory.account(first_name="Tara", last_name="Target")
    await factory.add_membership(roled_org.id, co_owner.id, OWNER)
    await factory.add_membership(roled_org.id, target.id, MEMBER)
    return Scene(
        org=roled_org,
        co_owner=co_owner,
        target=target,
        candidate=await factory.account(),
        superuser=await factory.superuser(),
    )


@pytest.mark.parametrize(
    ("action", "actor", "expected"),
    [
        pytest.param(action, actor, expected, id=f"{actor}-{action}")
        for action, by_actor in HTTP_EXPECTATIONS.items()
        for actor, expected in by_actor.items()
    ],
)
async def test_http_status_for_actor_and_action(
    client: httpx.AsyncClient,
    factory: Factory,
    scene: Scene,
    action: str,
    actor: str,
    expected: int | tuple[int, str],
) -> None:
    account = scene.actor(actor)
    call = CALLS[action]
    before = await factory.roles(scene.org.id)
    response = await client.request(
        call.method,
        call.path(scene, account),
        json=call.body(scene) if call.body else None,
        headers=account.headers,
    )
    if isinstance(expected, tuple):
        assert_error(response, *expected)
        assert await factory.roles(scene.org.id) == before  # a refusal changes nothing
    else:
        assert response.status_code == expected, response.text


def test_http_expectations_cover_every_matrix_action() -> None:
    """Each OrgAction is exercised by at least one HTTP case above."""
    covered = {
        OrgAction.VIEW: "view",
        OrgAction.LIST_MEMBERS: "list_members",
        OrgAction.UPDATE: "update",
        OrgAction.CHANGE_SLUG: "change_slug",
        OrgAction.DELETE: "delete",
        OrgAction.ADD_MEMBER: "add_member",
        OrgAction.CHANGE_ROLE: "promote_member_to_admin",
        OrgAction.REMOVE_MEMBER: "remove_member",
        OrgAction.LEAVE: "leave",
    }
    assert set(covered) == set(OrgAction)
    for action, case in covered.items():
        allowed = {
            actor
            for actor, expected in HTTP_EXPECTATIONS[case].items()
            if actor != "superuser" and not isinstance(expected, tuple)
        }
        assert allowed == {str(role) for role in EXPECTED_ACTION_ROLES[action]}, action


async def test_superuser_who_is_not_a_member_is_not_listed_as_one(
    client: httpx.AsyncClient, scene: Scene
) -> None:
    response = await client.get(f"{scene.org.url}/members", headers=scene.superuser.headers)
    assert response.status_code == 200
    listed = {item["user_id"] for item in response.json()["data"]}
    assert str(scene.superuser.id) not in listed
    mine = await client.get(f"{API}/organizations/me", headers=scene.superuser.headers)
    assert mine.json() == []
