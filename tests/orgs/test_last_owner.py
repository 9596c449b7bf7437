"""An organization always keeps at least one owner (409 LAST_OWNER), also under concurrency.

The concurrent cases fire two requests at once with ``asyncio.gather`` (each through its own
HTTP client, so nothing is serialised on the client side) and check the database after
each round. On PostgreSQL they exercise the organization row lock; on SQLite, the database
write lock.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from orgauth.models import OrgRole
from tests.support.orgs import PEER, Account, Factory, RoledOrg, assert_error

ROUNDS = 10


# --- one request at a time -----------------------------------------------------------


@pytest.mark.parametrize("new_role", ["admin", "member"])
async def test_last_owner_cannot_demote_themself(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg, new_role: str
) -> None:
    response = await client.patch(
        roled_org.member_url(roled_org.owner.id),
        json={"role": new_role},
        headers=roled_org.owner.headers,
    )
    assert_error(response, 409, "LAST_OWNER")
    assert await factory.role_of(roled_org.id, roled_org.owner.id) == "owner"


async def test_last_owner_cannot_leave(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    response = await client.delete(
        roled_org.member_url(roled_org.owner.id), headers=roled_org.owner.headers
    )
    assert_error(response, 409, "LAST_OWNER")
    assert await factory.role_of(roled_org.id, roled_org.owner.id) == "owner"


async def test_sole_member_owner_cannot_leave_either(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    owner = await factory.account()
    org = await factory.organization(owner)
    response = await client.delete(
        f"/api/v1/organizations/{org['id']}/members/{owner.id}", headers=owner.headers
    )
    assert_error(response, 409, "LAST_OWNER")


async def test_superuser_cannot_demote_or_remove_the_last_owner(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    superuser = await factory.superuser()
    url = roled_org.member_url(roled_org.owner.id)
    assert_error(
        await client.patch(url, json={"role": "member"}, headers=superuser.headers),
        409,
        "LAST_OWNER",
    )
    assert_error(await client.delete(url, headers=superuser.headers), 409, "LAST_OWNER")
    admin_url = f"/api/v1/admin/organizations/{roled_org.id}/members/{roled_org.owner.id}"
    assert_error(
        await client.patch(admin_url, json={"role": "admin"}, headers=superuser.headers),
        409,
        "LAST_OWNER",
    )
    assert_error(await client.delete(admin_url, headers=superuser.headers), 409, "LAST_OWNER")
    assert await factory.owner_count(roled_org.id) == 1


async def test_keeping_the_owner_role_is_not_a_demotion(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    response = await client.patch(
        roled_org.member_url(roled_org.owner.id),
        json={"role": "owner"},
        headers=roled_org.owner.headers,
    )
    assert response.status_code == 200, response.text


async def test_with_two_owners_one_may_leave_but_then_the_other_may_not(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    second = roled_org.admin
    promote = await client.patch(
        roled_org.member_url(second.id), json={"role": "owner"}, headers=roled_org.owner.headers
    )
    assert promote.status_code == 200
    leave = await client.delete(
        roled_org.member_url(roled_org.owner.id), headers=roled_org.owner.headers
    )
    assert leave.status_code == 204
    assert_error(
        await client.delete(roled_org.member_url(second.id), headers=second.headers),
        409,
        "LAST_OWNER",
    )
    assert await factory.roles(roled_org.id) == {
        second.id: "owner",
        roled_org.member.id: "member",
    }


async def test_with_two_owners_one_may_demote_the_other(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    await factory.add_membership(roled_org.id, roled_org.outsider.id, OrgRole.OWNER)
    response = await client.patch(
        roled_org.member_url(roled_org.outsider.id),
        json={"role": "member"},
        headers=roled_org.owner.headers,
    )
    assert response.status_code == 200
    assert await factory.owner_count(roled_org.id) == 1


async def test_last_owner_may_be_deleted_with_the_whole_organization(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    response = await client.delete(roled_org.url, headers=roled_org.owner.headers)
    assert response.status_code == 204
    assert await factory.roles(roled_org.id) == {}


# --- concurrency ---------------------------------------------------------------------


@dataclass(frozen=True)
class TwoOwners:
    org_id: uuid.UUID
    a: Account
    b: Account

    def member_url(self, user_id: uuid.UUID) -> str:
        return f"/api/v1/organizations/{self.org_id}/members/{user_id}"


@pytest.fixture
async def second_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=PEER)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def _two_owners(factory: Factory) -> TwoOwners:
    a = await factory.account()
    b = await factory.account()
    org = await factory.organization(a)
    org_id = uuid.UUID(org["id"])
    await factory.add_membership(org_id, b.id, OrgRole.OWNER)
    return TwoOwners(org_id, a, b)


def _outcome(response: httpx.Response) -> tuple[int, str | None]:
    if response.status_code >= 400:
        return response.status_code, response.json()["detail"]["code"]
    return response.status_code, None


async def test_concurrent_cross_demotions_never_leave_zero_owners(
    client: httpx.AsyncClient, second_client: httpx.AsyncClient, factory: Factory
) -> None:
    """A demotes B while B demotes A. Whichever runs second finds itself no longer an owner
    (403) or finds the other as the last owner (409); never both succeed."""
    outcomes = []
    for _ in range(ROUNDS):
        pair = await _two_owners(factory)
        first, second = await asyncio.gather(
            client.patch(
                pair.member_url(pair.b.id), json={"role": "admin"}, headers=pair.a.headers
            ),
            second_client.patch(
                pair.member_url(pair.a.id), json={"role": "admin"}, headers=pair.b.headers
            ),
        )
        results = sorted([_outcome(first), _outcome(second)])
        outcomes.append(results)
        assert results[0] == (200, None), results
        assert results[1] in {(403, "INSUFFICIENT_ROLE"), (409, "LAST_OWNER")}, results
        assert await factory.owner_count(pair.org_id) == 1
    assert len(outcomes) == ROUNDS


async def test_concurrent_self_demotions_keep_one_owner(
    client: httpx.AsyncClient, second_client: httpx.AsyncClient, factory: Factory
) -> None:
    """Both owners step down at once: exactly one succeeds, the other gets 409 LAST_OWNER."""
    for _ in range(ROUNDS):
        pair = await _two_owners(factory)
        first, second = await asyncio.gather(
            client.patch(
                pair.member_url(pair.a.id), json={"role": "member"}, headers=pair.a.headers
            ),
            second_client.patch(
                pair.member_url(pair.b.id), json={"role": "member"}, headers=pair.b.headers
            ),
        )
        results = sorted([_outcome(first), _outcome(second)])
        assert results == [(200, None), (409, "LAST_OWNER")], results
        assert await factory.owner_count(pair.org_id) == 1


async def test_concurrent_leaves_by_both_owners_keep_one_owner(
    client: httpx.AsyncClient, second_client: httpx.AsyncClient, factory: Factory
) -> None:
    for _ in range(ROUNDS):
        pair = await _two_owners(factory)
        first, second = await asyncio.gather(
            client.delete(pair.member_url(pair.a.id), headers=pair.a.headers),
            second_client.delete(pair.member_url(pair.b.id), headers=pair.b.headers),
        )
        results = sorted([_outcome(first), _outcome(second)])
        assert results == [(204, None), (409, "LAST_OWNER")], results
        roles = await factory.roles(pair.org_id)
        assert list(roles.values()) == ["owner"]


async def test_concurrent_removal_and_leave_keep_one_owner(
    client: httpx.AsyncClient, second_client: httpx.AsyncClient, factory: Factory
) -> None:
    """A removes B while B leaves: B is gone exactly once and A stays the owner."""
    for _ in range(ROUNDS):
        pair = await _two_owners(factory)
        first, second = await asyncio.gather(
            client.delete(pair.member_url(pair.b.id), headers=pair.a.headers),
            second_client.delete(pair.member_url(pair.b.id), headers=pair.b.headers),
        )
        results = sorted([_outcome(first), _outcome(second)])
        assert results[0] == (204, None), results
        # The second finds B gone: 404 for A's removal, 404 for B (no longer a member).
        assert results[1][0] == 404, results
        assert await factory.roles(pair.org_id) == {pair.a.id: "owner"}


async def test_concurrent_admin_deletion_and_leave_keep_an_owner(
    client: httpx.AsyncClient, second_client: httpx.AsyncClient, factory: Factory
) -> None:
    """A superuser deletes owner A while owner B leaves an organization that has another
    member: each alone is allowed, together they would leave the member without an owner.
    One of them must be refused."""
    superuser = await factory.superuser()
    for _ in range(ROUNDS):
        pair = await _two_owners(factory)
        bystander = await factory.user()
        await factory.add_membership(pair.org_id, bystander, OrgRole.MEMBER)
        deletion, leave = await asyncio.gather(
            client.delete(f"/api/v1/admin/users/{pair.a.id}", headers=superuser.headers),
            second_client.delete(pair.member_url(pair.b.id), headers=pair.b.headers),
        )
        results = sorted([_outcome(deletion), _outcome(leave)])
        assert results[0][0] == 204, results
        assert results[1] == (409, "LAST_OWNER"), results
        roles = await factory.roles(pair.org_id)
        assert bystander in roles
        assert await factory.owner_count(pair.org_id) == 1, roles
