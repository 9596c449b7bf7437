"""``POST /organizations/{org_id}/transfer-ownership`` (docs/API.md).

Owners (and superusers) only, held by no permission: a custom role with every permission
is refused like an admin. Strangers get 404 first; then 403 for non-owners; then 409
``SELF_ACTION_FORBIDDEN`` for yourself and 404 ``MEMBER_NOT_FOUND`` for a user who is not a
member here. The target becomes an owner, the caller's own membership becomes ``admin``,
other owners stay, and concurrent transfers never leave an organization without an owner.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from orgauth.models import OrgRole
from tests.support.orgs import (
    API,
    MEMBER_KEYS,
    Account,
    Factory,
    RoledOrg,
    assert_error,
    assert_validation_error,
    audit_event,
    audit_events,
)
from tests.support.roles import ADMIN_PERMISSIONS, BUILT_IN_PERMISSIONS, create_role

DENIED = (403, "INSUFFICIENT_ROLE")


async def transfer(
    client: httpx.AsyncClient, org_url: str, caller: Account, user_id: uuid.UUID | str
) -> httpx.Response:
    return await client.post(
        f"{org_url}/transfer-ownership", json={"user_id": str(user_id)}, headers=caller.headers
    )


def owners(roles: dict[uuid.UUID, str]) -> set[uuid.UUID]:
    return {user_id for user_id, role in roles.items() if role == OrgRole.OWNER}


# --- success ---------------------------------------------------------------------------


async def test_owner_hands_ownership_to_a_member_and_becomes_admin(
    client: httpx.AsyncClient,
    factory: Factory,
    roled_org: RoledOrg,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.clear()
    response = await transfer(client, roled_org.url, roled_org.owner, roled_org.member.id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"owner", "previous_owner"}
    assert set(body["owner"]) == MEMBER_KEYS
    assert (body["owner"]["user_id"], body["owner"]["role"]) == (str(roled_org.member.id), "owner")
    assert body["owner"]["permissions"] == BUILT_IN_PERMISSIONS
    previous = body["previous_owner"]
    assert (previous["user_id"], previous["role"]) == (str(roled_org.owner.id), "admin")
    assert previous["permissions"] == ADMIN_PERMISSIONS
    assert await factory.roles(roled_org.id) == {
        roled_org.owner.id: "admin",
        roled_org.admin.id: "admin",
        roled_org.member.id: "owner",
    }
    event = audit_event(caplog, "organization.ownership_transferred")
    assert (event.actor_id, event.organization_id, event.user_id, event.previous_owner_id) == (
        str(roled_org.owner.id),
        str(roled_org.id),
        str(roled_org.member.id),
        str(roled_org.owner.id),
    )


async def test_the_new_owner_holds_the_owners_rights_on_the_next_request(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    response = await transfer(client, roled_org.url, roled_org.owner, roled_org.admin.id)
    assert response.status_code == 200, response.text
    # The former owner, now an admin, can no longer delete nor transfer back.
    assert_error(await client.delete(roled_org.url, headers=roled_org.owner.headers), *DENIED)
    assert_error(
        await transfer(client, roled_org.url, roled_org.owner, roled_org.owner.id), *DENIED
    )
    # The new owner can hand it straight back.
    back = await transfer(client, roled_org.url, roled_org.admin, roled_org.owner.id)
    assert back.status_code == 200, back.text
    assert back.json()["owner"]["role"] == "owner"
    assert back.json()["previous_owner"]["role"] == "admin"


async def test_transferring_to_another_owner_leaves_them_owner_and_steps_down(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    co_owner = await factory.account()
    await factory.add_membership(roled_org.id, co_owner.id, OrgRole.OWNER)
    response = await transfer(client, roled_org.url, roled_org.owner, co_owner.id)
    assert response.status_code == 200, response.text
    assert response.json()["owner"]["role"] == "owner"
    assert await factory.role_of(roled_org.id, co_owner.id) == "owner"
    assert await factory.role_of(roled_org.id, roled_org.owner.id) == "admin"


async def test_other_owners_are_unchanged(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    co_owner = await factory.account()
    await factory.add_membership(roled_org.id, co_owner.id, OrgRole.OWNER)
    response = await transfer(client, roled_org.url, roled_org.owner, roled_org.member.id)
    assert response.status_code == 200, response.text
    assert owners(await factory.roles(roled_org.id)) == {co_owner.id, roled_org.member.id}


async def test_a_custom_role_holder_can_become_owner(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    await create_role(client, roled_org, "reader")
    reader = await factory.account()
    await factory.add_membership(roled_org.id, reader.id, "reader")
    response = await transfer(client, roled_org.url, roled_org.owner, reader.id)
    assert response.status_code == 200, response.text
    assert await factory.role_of(roled_org.id, reader.id) == "owner"


async def test_a_superuser_who_is_not_a_member_transfers_without_a_previous_owner(
    client: httpx.AsyncClient,
    factory: Factory,
    roled_org: RoledOrg,
    superuser: Account,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.clear()
    response = await transfer(client, roled_org.url, superuser, roled_org.member.id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["previous_owner"] is None
    assert (body["owner"]["user_id"], body["owner"]["role"]) == (str(roled_org.member.id), "owner")
    assert await factory.roles(roled_org.id) == {
        roled_org.owner.id: "owner",
        roled_org.admin.id: "admin",
        roled_org.member.id: "owner",
    }
    assert superuser.id not in await factory.roles(roled_org.id)
    event = audit_event(caplog, "organization.ownership_transferred")
    assert (event.actor_id, event.previous_owner_id) == (str(superuser.id), None)


@pytest.mark.parametrize("role", ["member", "owner"])
async def test_a_superuser_who_is_a_member_steps_down_to_admin(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg, superuser: Account, role: str
) -> None:
    await factory.add_membership(roled_org.id, superuser.id, role)
    response = await transfer(client, roled_org.url, superuser, roled_org.member.id)
    assert response.status_code == 200, response.text
    previous = response.json()["previous_owner"]
    assert (previous["user_id"], previous["role"]) == (str(superuser.id), "admin")
    assert await factory.role_of(roled_org.id, superuser.id) == "admin"


# --- refusals --------------------------------------------------------------------------


async def test_strangers_and_unknown_organizations_get_404_first(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    # Even naming themselves or a non-member: the organization is what is hidden.
    for target in (roled_org.member.id, roled_org.outsider.id, uuid.uuid4()):
        response = await transfer(client, roled_org.url, roled_org.outsider, target)
        assert_error(response, 404, "ORGANIZATION_NOT_FOUND")
    missing = f"{API}/organizations/{uuid.uuid4()}"
    response = await transfer(client, missing, roled_org.owner, roled_org.member.id)
    assert_error(response, 404, "ORGANIZATION_NOT_FOUND")


@pytest.mark.parametrize("role", ["admin", "member"])
async def test_admins_and_members_are_refused(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg, role: str
) -> None:
    before = await factory.roles(roled_org.id)
    caller = roled_org.by_role(role)
    for target in (roled_org.member.id, roled_org.admin.id, uuid.uuid4(), caller.id):
        assert_error(await transfer(client, roled_org.url, caller, target), *DENIED)
    assert await factory.roles(roled_org.id) == before


async def test_a_custom_role_with_every_permission_is_still_not_an_owner(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    await create_role(client, roled_org, "deputy", list(BUILT_IN_PERMISSIONS))
    deputy = await factory.account()
    await factory.add_membership(roled_org.id, deputy.id, "deputy")
    before = await factory.roles(roled_org.id)
    response = await transfer(client, roled_org.url, deputy, roled_org.member.id)
    assert_error(response, *DENIED)
    assert await factory.roles(roled_org.id) == before


async def test_transferring_to_yourself_is_409(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg, superuser: Account
) -> None:
    before = await factory.roles(roled_org.id)
    response = await transfer(client, roled_org.url, roled_org.owner, roled_org.owner.id)
    assert_error(response, 409, "SELF_ACTION_FORBIDDEN")
    # A superuser naming themselves, member or not, is refused the same way.
    response = await transfer(client, roled_org.url, superuser, superuser.id)
    assert_error(response, 409, "SELF_ACTION_FORBIDDEN")
    assert await factory.roles(roled_org.id) == before


async def test_a_target_who_is_not_a_member_is_404(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg, superuser: Account
) -> None:
    other = await factory.roled_org()
    before = await factory.roles(roled_org.id)
    for target in (roled_org.outsider.id, other.member.id, other.owner.id, uuid.uuid4()):
        for caller in (roled_org.owner, superuser):
            response = await transfer(client, roled_org.url, caller, target)
            assert_error(response, 404, "MEMBER_NOT_FOUND")
    assert await factory.roles(roled_org.id) == before
    assert await factory.role_of(other.id, other.member.id) == "member"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"user_id": "not-a-uuid"},
        {"user_id": None},
        {"user_id": "00000000-0000-4000-8000-000000000000", "role": "owner"},
        {"email": "someone@example.com"},
    ],
)
async def test_malformed_bodies_are_422(
    client: httpx.AsyncClient, roled_org: RoledOrg, body: dict[str, Any]
) -> None:
    response = await client.post(
        f"{roled_org.url}/transfer-ownership", json=body, headers=roled_org.owner.headers
    )
    assert_validation_error(response)


async def test_without_a_token_is_401(client: httpx.AsyncClient, roled_org: RoledOrg) -> None:
    response = await client.post(
        f"{roled_org.url}/transfer-ownership", json={"user_id": str(roled_org.member.id)}
    )
    assert_error(response, 401, "NOT_AUTHENTICATED")


async def test_a_refused_transfer_is_not_audited(
    client: httpx.AsyncClient, roled_org: RoledOrg, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    assert_error(
        await transfer(client, roled_org.url, roled_org.admin, roled_org.member.id), *DENIED
    )
    assert [r.getMessage() for r in audit_events(caplog)] == []


# --- concurrency -----------------------------------------------------------------------

ROUNDS = 4


async def test_two_owners_transferring_to_each_other_never_leave_zero_owners(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    for _ in range(ROUNDS):
        org = await factory.roled_org()
        second = await factory.account()
        await factory.add_membership(org.id, second.id, OrgRole.OWNER)
        first_call, second_call = await asyncio.gather(
            transfer(client, org.url, org.owner, second.id),
            transfer(client, org.url, second, org.owner.id),
        )
        # Serialised: the first steps down, the second is still an owner and hands it back.
        assert (first_call.status_code, second_call.status_code) == (200, 200)
        roles = await factory.roles(org.id)
        assert len(owners(roles)) == 1, roles
        assert owners(roles) <= {org.owner.id, second.id}


async def test_two_owners_handing_over_at_once_leave_both_targets_owners(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    for _ in range(ROUNDS):
        org = await factory.roled_org()
        second = await factory.account()
        await factory.add_membership(org.id, second.id, OrgRole.OWNER)
        responses = await asyncio.gather(
            transfer(client, org.url, org.owner, org.member.id),
            transfer(client, org.url, second, org.admin.id),
        )
        assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
        roles = await factory.roles(org.id)
        assert owners(roles) == {org.member.id, org.admin.id}
        assert (roles[org.owner.id], roles[second.id]) == ("admin", "admin")


async def test_one_owner_transferring_twice_at_once_wins_once(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    for _ in range(ROUNDS):
        org = await factory.roled_org()
        responses = await asyncio.gather(
            transfer(client, org.url, org.owner, org.member.id),
            transfer(client, org.url, org.owner, org.admin.id),
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 403], [r.text for r in responses]
        winner = next(r for r in responses if r.status_code == 200).json()["owner"]["user_id"]
        roles = await factory.roles(org.id)
        assert owners(roles) == {uuid.UUID(winner)}
        assert roles[org.owner.id] == "admin"
