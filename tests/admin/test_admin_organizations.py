"""/admin/organizations (docs/API.md): every organization, whatever the superuser's membership."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from orgauth.models import Organization, OrgRole, utcnow
from tests.support.http import ClientFactory, assert_error
from tests.support.orgs import (
    ADMIN,
    MEMBER_KEYS,
    ORG_KEYS,
    Account,
    Factory,
    RoledOrg,
    assert_validation_error,
    audit_event,
    audit_events,
)

ORGS = f"{ADMIN}/organizations"


async def _list(client: httpx.AsyncClient, superuser: Account, **params: Any) -> dict[str, Any]:
    response = await client.get(ORGS, params=params, headers=superuser.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _age(factory: Factory, org_id: str, days: int) -> None:
    async with factory.engine.begin() as connection:
        await connection.execute(
            update(Organization)
            .where(Organization.id == uuid.UUID(org_id))
            .values(created_at=utcnow() - timedelta(days=days))
        )


# --- listing -------------------------------------------------------------------------


async def test_lists_every_organization_newest_first_with_member_counts(
    client: httpx.AsyncClient, factory: Factory, superuser: Account, roled_org: RoledOrg
) -> None:
    loner = await factory.account()
    newer = await factory.organization(loner, name="Newer")
    await _age(factory, str(roled_org.id), 2)
    body = await _list(client, superuser)
    assert all(set(item) == ORG_KEYS for item in body["data"])
    assert [item["id"] for item in body["data"]] == [newer["id"], str(roled_org.id)]
    assert [item["member_count"] for item in body["data"]] == [1, 3]
    assert body["pagination"]["total"] == 2


@pytest.fixture
async def named_orgs(factory: Factory) -> dict[str, str]:
    owner = await factory.account()
    names = {
        "acme": ("Acme Rockets", "acme"),
        "percent": ("100% Juice", "juice"),
        "underscore": ("snake_case Ltd", "snake-case"),
        "quote": ("O'Reilly Books", "oreilly"),
    }
    return {
        key: (await factory.organization(owner, name=name, slug=slug))["id"]
        for key, (name, slug) in names.items()
    }


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("ACME", {"acme"}),
        ("rocket", {"acme"}),
        ("%", {"percent"}),
        ("_", {"underscore"}),
        ("snake-case", {"underscore"}),
        ("'", {"quote"}),
        ("oreilly", {"quote"}),
        ("nothing-like-this", set()),
    ],
)
async def test_search_matches_name_or_slug_literally(
    client: httpx.AsyncClient,
    superuser: Account,
    named_orgs: dict[str, str],
    term: str,
    expected: set[str],
) -> None:
    body = await _list(client, superuser, search=term)
    assert {item["id"] for item in body["data"]} == {named_orgs[k] for k in expected}
    assert body["pagination"]["total"] == len(expected)


async def test_organizations_are_paginated(
    client: httpx.AsyncClient, superuser: Account, named_orgs: dict[str, str]
) -> None:
    first = await _list(client, superuser, limit=3)
    second = await _list(client, superuser, limit=3, page=2)
    assert first["pagination"]["total_pages"] == 2
    assert len(first["data"]) == 3
    assert len(second["data"]) == 1
    assert {i["id"] for i in first["data"] + second["data"]} == set(named_orgs.values())


# --- create --------------------------------------------------------------------------


async def test_create_for_another_owner(
    client: httpx.AsyncClient,
    factory: Factory,
    superuser: Account,
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner = await factory.account()
    response = await client.post(
        ORGS,
        json={"name": "Client Co", "description": "Set up by support", "owner_id": str(owner.id)},
        headers=superuser.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == ORG_KEYS
    assert (body["slug"], body["member_count"]) == ("client-co", 1)
    org_id = uuid.UUID(body["id"])
    assert await factory.roles(org_id) == {owner.id: "owner"}  # the superuser is not added
    mine = await client.get("/api/v1/organizations/me", headers=owner.headers)
    assert [(item["id"], item["role"]) for item in mine.json()] == [(body["id"], "owner")]
    event = audit_event(caplog, "organization.created")
    assert (event.actor_id, event.owner_id) == (str(superuser.id), str(owner.id))


async def test_create_without_owner_makes_the_superuser_owner(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    response = await client.post(ORGS, json={"name": "Mine"}, headers=superuser.headers)
    assert response.status_code == 201
    assert await factory.roles(uuid.UUID(response.json()["id"])) == {superuser.id: "owner"}


async def test_create_with_an_unknown_owner_is_404_and_creates_nothing(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    response = await client.post(
        ORGS, json={"name": "Ghost", "owner_id": str(uuid.uuid4())}, headers=superuser.headers
    )
    assert_error(response, 404, "USER_NOT_FOUND")
    assert await factory.count(Organization) == 0


async def test_create_with_a_taken_slug_is_409(
    client: httpx.AsyncClient, factory: Factory, superuser: Account, roled_org: RoledOrg
) -> None:
    response = await client.post(
        ORGS, json={"name": "Dup", "slug": roled_org.slug}, headers=superuser.headers
    )
    assert_error(response, 409, "SLUG_TAKEN")
    assert await factory.count(Organization) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"name": "X", "owner_id": "not-a-uuid"},
        {"name": "X", "member_count": 5},
        {"name": "X", "slug": "Not Valid"},
        {"name": ""},
        {},
    ],
)
async def test_create_with_an_invalid_body_is_422(
    client: httpx.AsyncClient, superuser: Account, body: dict[str, Any]
) -> None:
    assert_validation_error(await client.post(ORGS, json=body, headers=superuser.headers))


async def test_superusers_create_even_when_user_creation_is_disabled(
    make_app: ClientFactory, factory: Factory
) -> None:
    custom = await make_app(allow_user_org_creation=False)
    root = await factory.superuser(client=custom.client)
    response = await custom.client.post(ORGS, json={"name": "Allowed"}, headers=root.headers)
    assert response.status_code == 201


# --- read, update, delete ------------------------------------------------------------


async def test_get_any_organization(
    client: httpx.AsyncClient, superuser: Account, roled_org: RoledOrg
) -> None:
    response = await client.get(f"{ORGS}/{roled_org.id}", headers=superuser.headers)
    assert response.status_code == 200
    assert (response.json()["id"], response.json()["member_count"]) == (str(roled_org.id), 3)


@pytest.mark.parametrize(
    ("method", "body"), [("GET", None), ("PATCH", {"name": "X"}), ("DELETE", None)]
)
async def test_unknown_organization_is_404(
    client: httpx.AsyncClient, superuser: Account, method: str, body: dict[str, str] | None
) -> None:
    response = await client.request(
        method, f"{ORGS}/{uuid.uuid4()}", json=body, headers=superuser.headers
    )
    assert_error(response, 404, "ORGANIZATION_NOT_FOUND")


async def test_patch_any_organization(
    client: httpx.AsyncClient, superuser: Account, roled_org: RoledOrg
) -> None:
    response = await client.patch(
        f"{ORGS}/{roled_org.id}",
        json={"name": "Renamed by support", "slug": "renamed", "description": "note"},
        headers=superuser.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["slug"], body["description"]) == (
        "Renamed by support",
        "renamed",
        "note",
    )


async def test_patch_to_a_taken_slug_is_409(
    client: httpx.AsyncClient, factory: Factory, superuser: Account, roled_org: RoledOrg
) -> None:
    other = await factory.organization(roled_org.outsider, slug="other")
    response = await client.patch(
        f"{ORGS}/{other['id']}", json={"slug": roled_org.slug}, headers=superuser.headers
    )
    assert_error(response, 409, "SLUG_TAKEN")


async def test_delete_any_organization(
    client: httpx.AsyncClient,
    factory: Factory,
    superuser: Account,
    roled_org: RoledOrg,
    caplog: pytest.LogCaptureFixture,
) -> None:
    response = await client.delete(f"{ORGS}/{roled_org.id}", headers=superuser.headers)
    assert response.status_code == 204
    assert await factory.organization_row(roled_org.id) is None
    assert await factory.roles(roled_org.id) == {}
    event = audit_event(caplog, "organization.deleted")
    assert event.actor_id == str(superuser.id)


# --- members -------------------------------------------------------------------------


async def test_list_members_of_any_organization(
    client: httpx.AsyncClient, superuser: Account, roled_org: RoledOrg
) -> None:
    response = await client.get(
        f"{ORGS}/{roled_org.id}/members", params={"role": "admin"}, headers=superuser.headers
    )
    assert response.status_code == 200
    body = response.json()
    assert [item["user_id"] for item in body["data"]] == [str(roled_org.admin.id)]
    assert all(set(item) == MEMBER_KEYS for item in body["data"])


async def test_add_change_and_remove_members(
    client: httpx.AsyncClient,
    factory: Factory,
    superuser: Account,
    roled_org: RoledOrg,
    caplog: pytest.LogCaptureFixture,
) -> None:
    members = f"{ORGS}/{roled_org.id}/members"
    added = await client.post(
        members,
        json={"email": roled_org.outsider.email, "role": "owner"},
        headers=superuser.headers,
    )
    assert added.status_code == 201, added.text
    assert added.json()["role"] == "owner"
    changed = await client.patch(
        f"{members}/{roled_org.owner.id}", json={"role": "member"}, headers=superuser.headers
    )
    assert changed.status_code == 200
    removed = await client.delete(f"{members}/{roled_org.admin.id}", headers=superuser.headers)
    assert removed.status_code == 204
    assert await factory.roles(roled_org.id) == {
        roled_org.owner.id: "member",
        roled_org.member.id: "member",
        roled_org.outsider.id: "owner",
    }
    names = [record.getMessage() for record in audit_events(caplog)]
    assert names == ["member.added", "member.role_changed", "member.removed"]
    assert all(record.actor_id == str(superuser.id) for record in audit_events(caplog))


async def test_admin_member_routes_keep_the_last_owner(
    client: httpx.AsyncClient, factory: Factory, superuser: Account, roled_org: RoledOrg
) -> None:
    url = f"{ORGS}/{roled_org.id}/members/{roled_org.owner.id}"
    assert_error(
        await client.patch(url, json={"role": "admin"}, headers=superuser.headers),
        409,
        "LAST_OWNER",
    )
    assert_error(await client.delete(url, headers=superuser.headers), 409, "LAST_OWNER")
    assert await factory.role_of(roled_org.id, roled_org.owner.id) == "owner"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"user_id": "00000000-0000-4000-8000-000000000000"}, 404, "USER_NOT_FOUND"),
        ({"email": "nobody@example.com"}, 404, "USER_NOT_FOUND"),
    ],
)
async def test_adding_an_unknown_user_is_404(
    client: httpx.AsyncClient,
    superuser: Account,
    roled_org: RoledOrg,
    body: dict[str, str],
    status: int,
    code: str,
) -> None:
    response = await client.post(
        f"{ORGS}/{roled_org.id}/members", json=body, headers=superuser.headers
    )
    assert_error(response, status, code)


async def test_adding_an_existing_member_is_409(
    client: httpx.AsyncClient, superuser: Account, roled_org: RoledOrg
) -> None:
    response = await client.post(
        f"{ORGS}/{roled_org.id}/members",
        json={"user_id": str(roled_org.member.id)},
        headers=superuser.headers,
    )
    assert_error(response, 409, "ALREADY_MEMBER")


async def test_member_routes_of_an_unknown_organization_are_404(
    client: httpx.AsyncClient, superuser: Account, roled_org: RoledOrg
) -> None:
    base = f"{ORGS}/{uuid.uuid4()}/members"
    for method, path, body in (
        ("GET", base, None),
        ("POST", base, {"user_id": str(roled_org.member.id)}),
        ("PATCH", f"{base}/{roled_org.member.id}", {"role": "admin"}),
        ("DELETE", f"{base}/{roled_org.member.id}", None),
    ):
        response = await client.request(method, path, json=body, headers=superuser.headers)
        assert_error(response, 404, "ORGANIZATION_NOT_FOUND")


async def test_superuser_acting_on_a_non_member_is_404(
    client: httpx.AsyncClient, superuser: Account, roled_org: RoledOrg
) -> None:
    url = f"{ORGS}/{roled_org.id}/members/{roled_org.outsider.id}"
    assert_error(
        await client.patch(url, json={"role": "admin"}, headers=superuser.headers),
        404,
        "MEMBER_NOT_FOUND",
    )
    assert_error(await client.delete(url, headers=superuser.headers), 404, "MEMBER_NOT_FOUND")


async def test_superuser_who_is_also_a_member_may_leave_through_the_admin_route(
    client: httpx.AsyncClient, factory: Factory, superuser: Account, roled_org: RoledOrg
) -> None:
    await factory.add_membership(roled_org.id, superuser.id, OrgRole.MEMBER)
    response = await client.delete(
        f"{ORGS}/{roled_org.id}/members/{superuser.id}", headers=superuser.headers
    )
    assert response.status_code == 204
    assert await factory.role_of(roled_org.id, superuser.id) is None
