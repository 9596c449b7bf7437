"""Role edits, role changes and removals apply on the affected user's very next request
(docs/API.md): nothing about a member's permissions is cached in their token or in the
process. The affected user keeps the one access token they signed in with throughout.
"""

from __future__ import annotations

import httpx

from tests.support.http import ClientFactory
from tests.support.orgs import API, Account, Factory, RoledOrg, assert_error
from tests.support.roles import create_role, set_member_role, set_role_permissions


async def _my_permissions(client: httpx.AsyncClient, org: RoledOrg, user: Account) -> list[str]:
    response = await client.get(f"{API}/organizations/me", headers=user.headers)
    assert response.status_code == 200, response.text
    [mine] = [item for item in response.json() if item["id"] == str(org.id)]
    permissions: list[str] = mine["permissions"]
    return permissions


async def test_removing_a_permission_from_a_role_denies_the_next_request(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    await create_role(client, roled_org, "viewer", ["members:read", "organization:read"])
    viewer = await factory.account()
    await factory.add_membership(roled_org.id, viewer.id, "viewer")
    members = f"{roled_org.url}/members"
    assert (await client.get(members, headers=viewer.headers)).status_code == 200

    await set_role_permissions(client, roled_org, "viewer", ["organization:read"])
    assert_error(await client.get(members, headers=viewer.headers), 403, "INSUFFICIENT_ROLE")
    assert (await client.get(roled_org.url, headers=viewer.headers)).status_code == 200

    await set_role_permissions(client, roled_org, "viewer", ["members:read", "organization:read"])
    assert (await client.get(members, headers=viewer.headers)).status_code == 200


async def test_adding_a_permission_to_a_role_shows_in_my_organizations_at_once(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    await create_role(client, roled_org, "viewer", ["organization:read"])
    viewer = await factory.account()
    await factory.add_membership(roled_org.id, viewer.id, "viewer")
    assert await _my_permissions(client, roled_org, viewer) == ["organization:read"]

    await set_role_permissions(
        client, roled_org, "viewer", ["organization:read", "organization:update"]
    )
    assert await _my_permissions(client, roled_org, viewer) == [
        "organization:read",
        "organization:update",
    ]
    renamed = await client.patch(
        roled_org.url, json={"name": "By the viewer"}, headers=viewer.headers
    )
    assert renamed.status_code == 200, renamed.text
    listed = await client.get(f"{roled_org.url}/members", headers=roled_org.owner.headers)
    by_user = {m["user_id"]: m["permissions"] for m in listed.json()["data"]}
    assert by_user[str(viewer.id)] == ["organization:read", "organization:update"]


async def test_a_role_change_applies_to_the_next_request(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    await create_role(client, roled_org, "blind", ["organization:read"])
    member = roled_org.member
    members = f"{roled_org.url}/members"
    assert (await client.get(members, headers=member.headers)).status_code == 200

    await set_member_role(client, roled_org, member.id, "blind")
    assert_error(await client.get(members, headers=member.headers), 403, "INSUFFICIENT_ROLE")
    assert await _my_permissions(client, roled_org, member) == ["organization:read"]

    await set_member_role(client, roled_org, member.id, "admin")
    renamed = await client.patch(roled_org.url, json={"name": "Promoted"}, headers=member.headers)
    assert renamed.status_code == 200, renamed.text

    await set_member_role(client, roled_org, member.id, "member")
    assert_error(
        await client.patch(roled_org.url, json={"name": "Demoted"}, headers=member.headers),
        403,
        "INSUFFICIENT_ROLE",
    )


async def test_a_removed_member_gets_404_on_the_next_request(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    await create_role(client, roled_org, "viewer", ["members:read", "organization:read"])
    viewer = await factory.account()
    await factory.add_membership(roled_org.id, viewer.id, "viewer")
    assert (await client.get(roled_org.url, headers=viewer.headers)).status_code == 200

    removed = await client.delete(roled_org.member_url(viewer.id), headers=roled_org.owner.headers)
    assert removed.status_code == 204, removed.text
    for path in ("", "/members", "/roles", "/permissions"):
        response = await client.get(f"{roled_org.url}{path}", headers=viewer.headers)
        assert_error(response, 404, "ORGANIZATION_NOT_FOUND")
    mine = await client.get(f"{API}/organizations/me", headers=viewer.headers)
    assert mine.json() == []


async def test_a_role_edit_through_one_app_applies_on_another_at_once(
    make_app: ClientFactory, client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    """Two app instances on one database, as two server processes would be: the second
    holds no copy of the role that could go stale."""
    other = await make_app()
    await create_role(client, roled_org, "viewer", ["members:read", "organization:read"])
    viewer = await factory.account()
    await factory.add_membership(roled_org.id, viewer.id, "viewer")
    members = f"{roled_org.url}/members"
    assert (await other.client.get(members, headers=viewer.headers)).status_code == 200

    await set_role_permissions(client, roled_org, "viewer", ["organization:read"])
    assert_error(await other.client.get(members, headers=viewer.headers), 403, "INSUFFICIENT_ROLE")
    await set_member_role(client, roled_org, viewer.id, "member")
    assert (await other.client.get(members, headers=viewer.headers)).status_code == 200
