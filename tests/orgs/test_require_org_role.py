"""``auth.require_org_role(role)`` in a host application (docs/EMBEDDING.md).

No ``from __future__ import annotations`` here: the host routes are declared inside a
function, and FastAPI must see their ``Depends(...)`` annotations as objects, not strings.
"""

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth import Membership, OrgAuth
from orgauth.models import OrgRole
from tests.support.orgs import API, PEER, Factory, RoledOrg, assert_error
from tests.support.settings import make_settings


def build_host_app(auth: OrgAuth) -> FastAPI:
    app = FastAPI(lifespan=auth.lifespan)
    auth.install(app)

    @app.delete("/orgs/{org_id}/billing")
    async def cancel_billing(
        membership: Annotated[Membership, Depends(auth.require_org_role("admin"))],
    ) -> dict[str, Any]:
        return {
            "role": str(membership.role),
            "user_id": str(membership.user_id),
            "organization_id": str(membership.organization_id),
        }

    @app.get("/orgs/{org_id}/dashboard")
    async def dashboard(
        membership: Annotated[Membership, Depends(auth.require_org_role(OrgRole.MEMBER))],
    ) -> dict[str, str]:
        return {"role": str(membership.role)}

    @app.post("/orgs/{org_id}/transfer")
    async def transfer(
        membership: Annotated[Membership, Depends(auth.require_org_role("owner"))],
    ) -> dict[str, str]:
        return {"role": str(membership.role)}

    return app


@pytest.fixture
async def host(db: AsyncEngine, database_url: str, tmp_path: Path) -> AsyncIterator[FastAPI]:
    auth = OrgAuth(make_settings(database_url, tmp_path), prune_interval_seconds=None)
    app = build_host_app(auth)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def host_client(host: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=host, client=PEER)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def org(db: AsyncEngine, host_client: httpx.AsyncClient) -> RoledOrg:
    return await Factory(db, host_client).roled_org()


def billing(org_id: uuid.UUID) -> str:
    return f"/orgs/{org_id}/billing"


@pytest.mark.parametrize("role", ["owner", "admin"])
async def test_owner_and_admin_pass_and_get_their_membership(
    host_client: httpx.AsyncClient, org: RoledOrg, role: str
) -> None:
    account = org.by_role(role)
    response = await host_client.delete(billing(org.id), headers=account.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "role": role,
        "user_id": str(account.id),
        "organization_id": str(org.id),
    }


async def test_member_is_refused_with_insufficient_role(
    host_client: httpx.AsyncClient, org: RoledOrg
) -> None:
    response = await host_client.delete(billing(org.id), headers=org.member.headers)
    assert_error(response, 403, "INSUFFICIENT_ROLE")


async def test_non_member_gets_the_same_404_as_an_unknown_organization(
    host_client: httpx.AsyncClient, org: RoledOrg
) -> None:
    response = await host_client.delete(billing(org.id), headers=org.outsider.headers)
    assert_error(response, 404, "ORGANIZATION_NOT_FOUND")
    unknown = await host_client.delete(billing(uuid.uuid4()), headers=org.outsider.headers)
    assert unknown.json() == response.json()


async def test_superuser_passes_as_owner_without_being_a_member(
    host_client: httpx.AsyncClient, db: AsyncEngine, org: RoledOrg
) -> None:
    superuser = await Factory(db, host_client).superuser()
    response = await host_client.delete(billing(org.id), headers=superuser.headers)
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "owner"
    transfer = await host_client.post(f"/orgs/{org.id}/transfer", headers=superuser.headers)
    assert transfer.status_code == 200


async def test_superuser_gets_404_for_an_unknown_organization(
    host_client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    superuser = await Factory(db, host_client).superuser()
    response = await host_client.delete(billing(uuid.uuid4()), headers=superuser.headers)
    assert_error(response, 404, "ORGANIZATION_NOT_FOUND")


async def test_unauthenticated_caller_gets_401(
    host_client: httpx.AsyncClient, org: RoledOrg
) -> None:
    response = await host_client.delete(billing(org.id))
    assert_error(response, 401, "NOT_AUTHENTICATED")
    assert response.headers["www-authenticate"] == "Bearer"
    forged = await host_client.delete(billing(org.id), headers={"Authorization": "Bearer x.y.z"})
    assert_error(forged, 401, "INVALID_TOKEN")


async def test_malformed_org_id_is_422(host_client: httpx.AsyncClient, org: RoledOrg) -> None:
    response = await host_client.delete("/orgs/not-a-uuid/billing", headers=org.owner.headers)
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("dashboard", {"owner", "admin", "member"}),
        ("transfer", {"owner"}),
    ],
)
async def test_required_role_is_a_minimum(
    host_client: httpx.AsyncClient, org: RoledOrg, path: str, allowed: set[str]
) -> None:
    method = "GET" if path == "dashboard" else "POST"
    for role in ("owner", "admin", "member"):
        response = await host_client.request(
            method, f"/orgs/{org.id}/{path}", headers=org.by_role(role).headers
        )
        if role in allowed:
            assert response.status_code == 200, (role, response.text)
            assert response.json()["role"] == role
        else:
            assert_error(response, 403, "INSUFFICIENT_ROLE")


async def test_role_change_takes_effect_on_the_next_request(
    host_client: httpx.AsyncClient, org: RoledOrg
) -> None:
    member = org.member
    assert_error(
        await host_client.delete(billing(org.id), headers=member.headers), 403, "INSUFFICIENT_ROLE"
    )
    promoted = await host_client.patch(
        f"{API}/organizations/{org.id}/members/{member.id}",
        json={"role": "admin"},
        headers=org.owner.headers,
    )
    assert promoted.status_code == 200
    allowed = await host_client.delete(billing(org.id), headers=member.headers)
    assert allowed.status_code == 200
    assert allowed.json()["role"] == "admin"
    demoted = await host_client.patch(
        f"{API}/organizations/{org.id}/members/{member.id}",
        json={"role": "member"},
        headers=org.owner.headers,
    )
    assert demoted.status_code == 200
    assert_error(
        await host_client.delete(billing(org.id), headers=member.headers), 403, "INSUFFICIENT_ROLE"
    )
    removed = await host_client.delete(
        f"{API}/organizations/{org.id}/members/{member.id}", headers=org.owner.headers
    )
    assert removed.status_code == 204
    assert_error(
        await host_client.get(f"/orgs/{org.id}/dashboard", headers=member.headers),
        404,
        "ORGANIZATION_NOT_FOUND",
    )


async def test_deactivated_user_is_refused_before_any_role_check(
    host_client: httpx.AsyncClient, db: AsyncEngine, org: RoledOrg
) -> None:
    superuser = await Factory(db, host_client).superuser()
    response = await host_client.patch(
        f"{API}/admin/users/{org.admin.id}", json={"is_active": False}, headers=superuser.headers
    )
    assert response.status_code == 200
    assert_error(
        await host_client.delete(billing(org.id), headers=org.admin.headers), 401, "INVALID_TOKEN"
    )


def test_unknown_role_name_is_refused_when_the_route_is_declared(
    database_url: str, tmp_path: Path
) -> None:
    auth = OrgAuth(make_settings(database_url, tmp_path), prune_interval_seconds=None)
    with pytest.raises(ValueError, match="superadmin"):
        auth.require_org_role("superadmin")


def test_the_same_role_gives_the_same_dependency(database_url: str, tmp_path: Path) -> None:
    """FastAPI caches a dependency per request by identity; one callable per role keeps the
    membership lookup to one query even when a route and its router both require a role."""
    auth = OrgAuth(make_settings(database_url, tmp_path), prune_interval_seconds=None)
    assert auth.require_org_role("admin") is auth.require_org_role(OrgRole.ADMIN)
    assert auth.require_org_role("admin") is not auth.require_org_role("owner")
