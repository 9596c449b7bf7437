"""Tenant isolation and privilege escalation, attacked from inside.

A member of organization A (an owner there, so with the most rights A can give) aims every
organization route at organization B. Each attempt must look exactly like an unknown
organization and leave B untouched.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from orgauth.models import User
from tests.support.orgs import (
    API,
    Account,
    Factory,
    RoledOrg,
    assert_error,
    assert_validation_error,
)


@dataclass(frozen=True)
class TwoTenants:
    a: RoledOrg
    b: RoledOrg


@pytest.fixture
async def tenants(factory: Factory) -> TwoTenants:
    return TwoTenants(a=await factory.roled_org(), b=await factory.roled_org())


async def _snapshot(factory: Factory, org_id: uuid.UUID) -> tuple[Any, ...]:
    row = await factory.organization_row(org_id)
    return row, await factory.roles(org_id)


def _org_routes(org_id: uuid.UUID, user_id: uuid.UUID, attacker: Account) -> list[Any]:
    base = f"{API}/organizations/{org_id}"
    return [
        ("GET", base, None),
        ("PATCH", base, {"name": "Pwned", "slug": f"pwned-{uuid.uuid4().hex[:6]}"}),
        ("DELETE", base, None),
        ("GET", f"{base}/members", None),
        ("GET", f"{base}/members?search=a&role=owner", None),
        ("POST", f"{base}/members", {"user_id": str(attacker.id), "role": "owner"}),
        ("POST", f"{base}/members", {"email": attacker.email, "role": "member"}),
        ("PATCH", f"{base}/members/{user_id}", {"role": "member"}),
        ("PATCH", f"{base}/members/{attacker.id}", {"role": "owner"}),
        ("DELETE", f"{base}/members/{user_id}", None),
        ("DELETE", f"{base}/members/{attacker.id}", None),
    ]


@pytest.mark.parametrize("attacker_role", ["owner", "admin", "member"])
async def test_other_tenants_organization_looks_exactly_like_an_unknown_one(
    client: httpx.AsyncClient, factory: Factory, tenants: TwoTenants, attacker_role: str
) -> None:
    attacker = tenants.a.by_role(attacker_role)
    b = tenants.b
    before = await _snapshot(factory, b.id)
    victim_routes = _org_routes(b.id, b.owner.id, attacker)
    unknown_routes = _org_routes(uuid.uuid4(), b.owner.id, attacker)
    for (method, path, body), (_, unknown_path, unknown_body) in zip(
        victim_routes, unknown_routes, strict=True
    ):
        response = await client.request(method, path, json=body, headers=attacker.headers)
        assert_error(response, 404, "ORGANIZATION_NOT_FOUND")
        unknown = await client.request(
            method, unknown_path, json=unknown_body, headers=attacker.headers
        )
        assert response.json() == unknown.json(), (method, path)
        assert response.headers.get("content-length") == unknown.headers.get("content-length")
    assert await _snapshot(factory, b.id) == before


async def test_other_tenants_organization_is_invisible_in_my_list(
    client: httpx.AsyncClient, tenants: TwoTenants
) -> None:
    response = await client.get(f"{API}/organizations/me", headers=tenants.a.owner.headers)
    assert [item["id"] for item in response.json()] == [str(tenants.a.id)]


@pytest.mark.parametrize("target", ["owner", "admin", "member"])
async def test_other_tenants_member_cannot_be_reached_through_my_organization(
    client: httpx.AsyncClient, factory: Factory, tenants: TwoTenants, target: str
) -> None:
    a, b = tenants.a, tenants.b
    victim = b.by_role(target)
    before_a, before_b = await _snapshot(factory, a.id), await _snapshot(factory, b.id)
    for method, body in (
        ("PATCH", {"role": "member"}),
        ("PATCH", {"role": "owner"}),
        ("DELETE", None),
    ):
        response = await client.request(
            method, a.member_url(victim.id), json=body, headers=a.owner.headers
        )
        assert_error(response, 404, "MEMBER_NOT_FOUND")
    assert await _snapshot(factory, a.id) == before_a
    assert await _snapshot(factory, b.id) == before_b


async def test_outsider_cannot_add_themself(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    outsider = roled_org.outsider
    response = await client.post(
        f"{roled_org.url}/members",
        json={"user_id": str(outsider.id), "role": "member"},
        headers=outsider.headers,
    )
    assert_error(response, 404, "ORGANIZATION_NOT_FOUND")
    assert await factory.role_of(roled_org.id, outsider.id) is None


# --- the admin API is for superusers only --------------------------------------------


def _admin_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) under /admin, from the OpenAPI schema, with ids filled in."""
    routes = []
    for template, operations in app.openapi()["paths"].items():
        if not template.startswith(f"{API}/admin"):
            continue
        path = template
        for name in ("user_id", "org_id"):
            path = path.replace("{" + name + "}", str(uuid.uuid4()))
        routes.extend((method.upper(), path) for method in sorted(operations))
    return routes


def test_admin_routes_are_discovered(app: FastAPI) -> None:
    paths = {path.split("/admin", 1)[1].split("/")[1] for _, path in _admin_routes(app)}
    assert paths == {"users", "sessions", "organizations", "stats", "audit-logs"}
    assert len(_admin_routes(app)) >= 18


@pytest.mark.parametrize("role", ["owner", "admin", "member"])
async def test_organization_members_get_403_on_every_admin_route(
    app: FastAPI, client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg, role: str
) -> None:
    caller = roled_org.by_role(role)
    users_before = await factory.count(User)
    for method, path in _admin_routes(app):
        body = {} if method in {"POST", "PATCH"} else None
        response = await client.request(method, path, json=body, headers=caller.headers)
        assert_error(response, 403, "SUPERUSER_REQUIRED")
    # The most tempting target, with a well-formed body: still refused, nothing created.
    response = await client.post(
        f"{API}/admin/users/bulk-action",
        json={"action": "delete", "user_ids": [str(roled_org.owner.id)]},
        headers=caller.headers,
    )
    assert_error(response, 403, "SUPERUSER_REQUIRED")
    assert await factory.count(User) == users_before


async def test_anonymous_callers_get_401_on_every_admin_route(
    app: FastAPI, client: httpx.AsyncClient, db: object
) -> None:
    for method, path in _admin_routes(app):
        response = await client.request(method, path)
        assert_error(response, 401, "NOT_AUTHENTICATED")


# --- privilege escalation inside one organization ------------------------------------


@pytest.mark.parametrize(
    ("actor", "target", "method", "body"),
    [
        pytest.param("member", "member", "PATCH", {"role": "admin"}, id="member-promotes-self"),
        pytest.param("member", "member", "PATCH", {"role": "owner"}, id="member-owns-self"),
        pytest.param("member", "admin", "PATCH", {"role": "member"}, id="member-demotes-admin"),
        pytest.param("admin", "member", "PATCH", {"role": "owner"}, id="admin-grants-owner"),
        pytest.param("admin", "admin", "PATCH", {"role": "owner"}, id="admin-promotes-self"),
        pytest.param("admin", "owner", "PATCH", {"role": "admin"}, id="admin-demotes-owner"),
        pytest.param("admin", "owner", "PATCH", {"role": "member"}, id="admin-demotes-owner-2"),
        pytest.param("admin", "owner", "DELETE", None, id="admin-removes-owner"),
    ],
)
async def test_privilege_escalation_is_refused(
    client: httpx.AsyncClient,
    factory: Factory,
    roled_org: RoledOrg,
    actor: str,
    target: str,
    method: str,
    body: dict[str, str] | None,
) -> None:
    before = await factory.roles(roled_org.id)
    response = await client.request(
        method,
        roled_org.member_url(roled_org.by_role(target).id),
        json=body,
        headers=roled_org.by_role(actor).headers,
    )
    assert_error(response, 403, "INSUFFICIENT_ROLE")
    assert await factory.roles(roled_org.id) == before


async def test_admin_cannot_add_a_second_account_as_owner(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    sock_puppet = await factory.user()
    response = await client.post(
        f"{roled_org.url}/members",
        json={"user_id": str(sock_puppet), "role": "owner"},
        headers=roled_org.admin.headers,
    )
    assert_error(response, 403, "INSUFFICIENT_ROLE")
    assert await factory.role_of(roled_org.id, sock_puppet) is None


# --- mass assignment -----------------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        {"owner_id": "00000000-0000-4000-8000-000000000000"},
        {"role": "owner"},
        {"id": "00000000-0000-4000-8000-000000000000"},
        {"member_count": 0},
        {"created_at": "2000-01-01T00:00:00+00:00"},
        {"updated_at": "2000-01-01T00:00:00+00:00"},
        {"is_superuser": True},
    ],
)
async def test_privileged_fields_in_organization_bodies_are_422(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg, field: dict[str, Any]
) -> None:
    before = await _snapshot(factory, roled_org.id)
    create = await client.post(
        f"{API}/organizations", json={"name": "Mass", **field}, headers=roled_org.owner.headers
    )
    assert_validation_error(create)
    patch = await client.patch(
        roled_org.url, json={"name": "Mass", **field}, headers=roled_org.owner.headers
    )
    assert_validation_error(patch)
    assert await _snapshot(factory, roled_org.id) == before
    mine = await client.get(f"{API}/organizations/me", headers=roled_org.owner.headers)
    assert len(mine.json()) == 1


@pytest.mark.parametrize(
    "field",
    [
        {"is_superuser": True},
        {"is_active": True},
        {"email": "new@example.com"},
        {"id": "00000000-0000-4000-8000-000000000000"},
        {"hashed_password": "x"},
        {"created_at": "2000-01-01T00:00:00+00:00"},
    ],
)
async def test_privileged_fields_in_my_profile_are_422(
    client: httpx.AsyncClient, roled_org: RoledOrg, field: dict[str, Any]
) -> None:
    member = roled_org.member
    response = await client.patch(
        f"{API}/users/me", json={"first_name": "Mallory", **field}, headers=member.headers
    )
    assert_validation_error(response)
    me = (await client.get(f"{API}/users/me", headers=member.headers)).json()
    assert me["is_superuser"] is False
    assert me["first_name"] == "Mo"
    assert me["email"] == member.email


async def test_superuser_cannot_be_granted_through_organization_roles(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    await client.patch(
        roled_org.member_url(roled_org.member.id),
        json={"role": "owner"},
        headers=roled_org.owner.headers,
    )
    response = await client.get(f"{API}/admin/users", headers=roled_org.member.headers)
    assert_error(response, 403, "SUPERUSER_REQUIRED")


# --- query parameter bounds ----------------------------------------------------------

BAD_PAGINATION = [
    {"limit": "0"},
    {"limit": "101"},
    {"limit": "-5"},
    {"page": "0"},
    {"page": "-1"},
    {"page": "abc"},
    {"limit": "ten"},
    {"limit": "1.5"},
    {"page": ""},
    {"page": "99999999999999999999999"},
]


@pytest.fixture
async def list_endpoints(factory: Factory, roled_org: RoledOrg) -> tuple[Account, list[str]]:
    superuser = await factory.superuser()
    return superuser, [
        f"{roled_org.url}/members",
        f"{API}/admin/users",
        f"{API}/admin/sessions",
        f"{API}/admin/organizations",
        f"{API}/admin/organizations/{roled_org.id}/members",
    ]


@pytest.mark.parametrize(
    "params", BAD_PAGINATION, ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items())
)
async def test_out_of_range_pagination_is_422_on_every_list(
    client: httpx.AsyncClient, list_endpoints: tuple[Account, list[str]], params: dict[str, str]
) -> None:
    superuser, paths = list_endpoints
    for path in paths:
        assert_validation_error(await client.get(path, params=params, headers=superuser.headers))


@pytest.mark.parametrize("params", [{"limit": "1"}, {"limit": "100"}, {"page": "1000000"}])
async def test_pagination_bounds_themselves_are_accepted(
    client: httpx.AsyncClient, list_endpoints: tuple[Account, list[str]], params: dict[str, str]
) -> None:
    superuser, paths = list_endpoints
    for path in paths:
        response = await client.get(path, params=params, headers=superuser.headers)
        assert response.status_code == 200, (path, response.text)
        assert response.json()["pagination"]["page_size"] == int(params.get("limit", 20))


@pytest.mark.parametrize(
    "params",
    [
        {"sort_by": "hashed_password"},
        {"sort_by": "password"},
        {"sort_by": "id; DROP TABLE users"},
        {"sort_by": "EMAIL"},
        {"sort_by": "is_superuser"},
        {"sort_order": "sideways"},
        {"sort_order": "DESC"},
        {"is_active": "maybe"},
    ],
)
async def test_unknown_sort_or_filter_values_are_422(
    client: httpx.AsyncClient, factory: Factory, params: dict[str, str]
) -> None:
    superuser = await factory.superuser()
    response = await client.get(f"{API}/admin/users", params=params, headers=superuser.headers)
    assert_validation_error(response)


async def test_session_filters_are_validated(client: httpx.AsyncClient, factory: Factory) -> None:
    superuser = await factory.superuser()
    for params in ({"user_id": "nope"}, {"active": "perhaps"}):
        response = await client.get(
            f"{API}/admin/sessions", params=params, headers=superuser.headers
        )
        assert_validation_error(response)
