"""``auth.require_org_permission(...)``, ``orgauth.require_org_permission`` and
``require_org_role`` passing on permissions, in a host application (docs/EMBEDDING.md).

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

import orgauth
from orgauth import Membership, OrgAccess, OrgAuth, OrgPermission
from tests.support.orgs import API, PEER, Factory, RoledOrg, assert_error
from tests.support.roles import create_role, set_member_role
from tests.support.settings import make_settings

HOST_PERMISSIONS = [
    OrgPermission("billing:manage", "Manage billing"),  # min_role admin
    OrgPermission("projects:read", min_role="member"),
    OrgPermission("vault:open", min_role="owner"),
]


def _access(access: OrgAccess) -> dict[str, Any]:
    return {
        "organization_id": str(access.organization_id),
        "user_id": str(access.user.id) if access.user else None,
        "api_key_id": access.api_key_id,
        "role": access.role,
        "permissions": sorted(access.permissions),
    }


def build_host_app(auth: OrgAuth) -> FastAPI:
    app = FastAPI(lifespan=auth.lifespan)
    auth.install(app)

    @app.get("/orgs/{org_id}/billing")
    async def billing(
        access: Annotated[OrgAccess, Depends(auth.require_org_permission("billing:manage"))],
    ) -> dict[str, Any]:
        return _access(access)

    @app.get("/orgs/{org_id}/projects")
    async def projects(
        access: Annotated[OrgAccess, Depends(orgauth.require_org_permission("projects:read"))],
    ) -> dict[str, Any]:
        return _access(access)

    @app.get("/orgs/{org_id}/vault")
    async def vault(
        access: Annotated[OrgAccess, Depends(auth.require_org_permission("vault:open"))],
    ) -> dict[str, Any]:
        return _access(access)

    @app.get("/orgs/{org_id}/undeclared")
    async def undeclared(
        access: Annotated[OrgAccess, Depends(orgauth.require_org_permission("ghost:read"))],
    ) -> dict[str, Any]:
        return _access(access)

    @app.get("/orgs/{org_id}/admin-area")
    async def admin_area(
        membership: Annotated[Membership, Depends(auth.require_org_role("admin"))],
    ) -> dict[str, str]:
        return {"role": membership.role}

    @app.get("/orgs/{org_id}/app-admin-area")
    async def app_admin_area(
        membership: Annotated[Membership, Depends(orgauth.require_org_role("admin"))],
    ) -> dict[str, str]:
        return {"role": membership.role}

    @app.get("/whoami")
    async def whoami(
        principal: Annotated[
            orgauth.Principal | orgauth.KeyPrincipal, Depends(auth.current_principal)
        ],
        app_level: Annotated[
            orgauth.Principal | orgauth.KeyPrincipal, Depends(orgauth.current_principal)
        ],
    ) -> dict[str, Any]:
        assert type(principal) is type(app_level)
        if isinstance(principal, orgauth.KeyPrincipal):
            return {"kind": "api_key", "id": str(principal.key_id)}
        return {"kind": "user", "id": str(principal.user.id)}

    return app


@pytest.fixture
async def host(db: AsyncEngine, database_url: str, tmp_path: Path) -> AsyncIterator[FastAPI]:
    settings = make_settings(database_url, tmp_path, org_permissions='["reports:read"]')
    auth = OrgAuth(settings, prune_interval_seconds=None, permissions=HOST_PERMISSIONS)
    app = build_host_app(auth)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def host_client(host: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=host, client=PEER)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
def factory(db: AsyncEngine, host_client: httpx.AsyncClient) -> Factory:
    return Factory(db, host_client)


@pytest.fixture
async def org(factory: Factory) -> RoledOrg:
    return await factory.roled_org()


# --- who passes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("billing", {"owner", "admin"}),
        ("projects", {"owner", "admin", "member"}),
        ("vault", {"owner"}),
    ],
)
async def test_host_permissions_reach_the_built_in_roles_by_min_role(
    host_client: httpx.AsyncClient, org: RoledOrg, path: str, allowed: set[str]
) -> None:
    for role in ("owner", "admin", "member"):
        response = await host_client.get(
            f"/orgs/{org.id}/{path}", headers=org.by_role(role).headers
        )
        if role in allowed:
            assert response.status_code == 200, (role, response.text)
        else:
            assert_error(response, 403, "INSUFFICIENT_ROLE")


async def test_access_describes_the_caller(host_client: httpx.AsyncClient, org: RoledOrg) -> None:
    response = await host_client.get(f"/orgs/{org.id}/billing", headers=org.admin.headers)

    body = response.json()
    assert body["organization_id"] == str(org.id)
    assert body["user_id"] == str(org.admin.id)
    assert body["api_key_id"] is None
    assert body["role"] == "admin"
    assert "billing:manage" in body["permissions"]
    assert "reports:read" in body["permissions"]  # from ORG_PERMISSIONS (min_role admin)
    assert "organization:delete" not in body["permissions"]
    assert "vault:open" not in body["permissions"]


async def test_strangers_and_unknown_organizations_get_404_before_the_permission(
    host_client: httpx.AsyncClient, org: RoledOrg
) -> None:
    for path in ("billing", "projects", "vault"):
        stranger = await host_client.get(f"/orgs/{org.id}/{path}", headers=org.outsider.headers)
        assert_error(stranger, 404, "ORGANIZATION_NOT_FOUND")
        unknown = await host_client.get(f"/orgs/{uuid.uuid4()}/{path}", headers=org.owner.headers)
        assert_error(unknown, 404, "ORGANIZATION_NOT_FOUND")
        anonymous = await host_client.get(f"/orgs/{org.id}/{path}")
        assert anonymous.status_code == 401


async def test_a_superuser_who_is_not_a_member_holds_everything_as_owner(
    host_client: httpx.AsyncClient, factory: Factory, org: RoledOrg
) -> None:
    root = await factory.superuser()

    response = await host_client.get(f"/orgs/{org.id}/vault", headers=root.headers)

    assert response.status_code == 200, response.text
    assert response.json()["role"] == "owner"
    assert {"vault:open", "organization:delete", "billing:manage"} <= set(
        response.json()["permissions"]
    )


async def test_a_custom_role_holding_the_permission_passes(
    host_client: httpx.AsyncClient, org: RoledOrg
) -> None:
    await create_role(host_client, org, "billing", ["billing:manage"])
    await set_member_role(host_client, org, org.member.id, "billing")

    response = await host_client.get(f"/orgs/{org.id}/billing", headers=org.member.headers)

    assert response.status_code == 200, response.text
    assert response.json()["role"] == "billing"
    assert response.json()["permissions"] == ["billing:manage"]
    # ... and nothing else: not even reading projects, which plain members may.
    projects = await host_client.get(f"/orgs/{org.id}/projects", headers=org.member.headers)
    assert_error(projects, 403, "INSUFFICIENT_ROLE")


async def test_a_permission_taken_from_the_role_is_refused_on_the_next_request(
    host_client: httpx.AsyncClient, org: RoledOrg
) -> None:
    await create_role(host_client, org, "billing", ["billing:manage"])
    await set_member_role(host_client, org, org.member.id, "billing")
    assert (await host_client.get(f"/orgs/{org.id}/billing", headers=org.member.headers)).is_success

    edited = await host_client.patch(
        f"{org.url}/roles/billing", json={"permissions": []}, headers=org.owner.headers
    )
    assert edited.status_code == 200, edited.text

    response = await host_client.get(f"/orgs/{org.id}/billing", headers=org.member.headers)
    assert_error(response, 403, "INSUFFICIENT_ROLE")


# --- require_org_role passes on permissions -----------------------------------------------


async def test_require_org_role_passes_a_custom_role_holding_every_permission_of_the_role(
    host_client: httpx.AsyncClient, org: RoledOrg
) -> None:
    admins = await host_client.get(f"{org.url}/roles", headers=org.owner.headers)
    admin_permissions = next(r for r in admins.json() if r["key"] == "admin")["permissions"]
    await create_role(host_client, org, "deputy", admin_permissions)
    await set_member_role(host_client, org, org.member.id, "deputy")

    for path in ("admin-area", "app-admin-area"):
        response = await host_client.get(f"/orgs/{org.id}/{path}", headers=org.member.headers)
        assert response.status_code == 200, response.text
        assert response.json() == {"role": "deputy"}


async def test_require_org_role_refuses_a_custom_role_missing_one_permission(
    host_client: httpx.AsyncClient, org: RoledOrg
) -> None:
    admins = await host_client.get(f"{org.url}/roles", headers=org.owner.headers)
    admin_permissions = next(r for r in admins.json() if r["key"] == "admin")["permissions"]
    await create_role(host_client, org, "almost", admin_permissions[1:])
    await set_member_role(host_client, org, org.member.id, "almost")

    for path in ("admin-area", "app-admin-area"):
        response = await host_client.get(f"/orgs/{org.id}/{path}", headers=org.member.headers)
        assert_error(response, 403, "INSUFFICIENT_ROLE")


# --- declaring permissions ----------------------------------------------------------------


def test_a_key_missing_from_the_catalog_raises_when_the_dependency_is_created(
    tmp_path: Path, database_url: str
) -> None:
    auth = OrgAuth(make_settings(database_url, tmp_path), permissions=["billing:manage"])

    auth.require_org_permission("billing:manage")
    auth.require_org_permission("members:read")
    with pytest.raises(ValueError, match="ghost:read"):
        auth.require_org_permission("ghost:read")
    with pytest.raises(ValueError, match="not a permission key"):
        orgauth.require_org_permission("Not A Key")


async def test_the_app_level_dependency_refuses_a_key_the_app_does_not_declare(
    host_client: httpx.AsyncClient, org: RoledOrg, caplog: pytest.LogCaptureFixture
) -> None:
    """A host bug, not a client's: a 500 whose log names the undeclared key; nobody passes."""
    response = await host_client.get(f"/orgs/{org.id}/undeclared", headers=org.owner.headers)

    assert_error(response, 500, "INTERNAL_ERROR")
    assert "ghost:read" not in response.text
    assert any(
        "ghost:read" in record.getMessage() or "ghost:read" in str(record.exc_info)
        for record in caplog.records
    )


@pytest.mark.parametrize(
    ("permissions", "message"),
    [
        (["Billing:Manage"], "not a permission key"),
        (["billing"], "not a permission key"),
        ([f"b:{'x' * 63}"], "not a permission key"),
        (["members:read"], "built-in"),
        (["reports:read"], "listed twice"),  # also in ORG_PERMISSIONS below
        (["a:b", OrgPermission("a:b")], "listed twice"),
    ],
)
def test_bad_host_permissions_stop_construction_naming_the_setting(
    tmp_path: Path, database_url: str, permissions: list[Any], message: str
) -> None:
    settings = make_settings(database_url, tmp_path, org_permissions="reports:read")

    with pytest.raises(ValueError, match=message) as raised:
        OrgAuth(settings, permissions=permissions)
    assert "ORG_PERMISSIONS" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_min_role_must_be_a_built_in_role() -> None:
    with pytest.raises(ValueError, match="min_role"):
        OrgPermission("a:b", min_role="superuser")


async def test_the_catalog_route_lists_host_permissions(
    host_client: httpx.AsyncClient, org: RoledOrg
) -> None:
    response = await host_client.get(
        f"{API}/organizations/{org.id}/permissions", headers=org.member.headers
    )

    assert response.status_code == 200
    by_key = {item["key"]: item for item in response.json()}
    assert [item["key"] for item in response.json()] == sorted(by_key)
    assert by_key["billing:manage"] == {
        "key": "billing:manage",
        "description": "Manage billing",
        "built_in": False,
    }
    assert by_key["reports:read"]["built_in"] is False
    assert by_key["members:read"]["built_in"] is True


# --- API keys -------------------------------------------------------------------------------


async def _key(host_client: httpx.AsyncClient, org: RoledOrg, permissions: list[str]) -> Any:
    response = await host_client.post(
        f"{API}/organizations/{org.id}/api-keys",
        json={"name": "host script", "permissions": permissions},
        headers=org.owner.headers,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_host_routes_accept_the_organizations_api_keys_like_users(
    host_client: httpx.AsyncClient, org: RoledOrg
) -> None:
    created = await _key(host_client, org, ["billing:manage", "projects:read"])
    for path in ("billing", "projects"):  # bound and app-level dependencies
        response = await host_client.get(
            f"/orgs/{org.id}/{path}", headers={"X-API-Key": created["key"]}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["user_id"] is None
        assert body["role"] is None
        assert body["api_key_id"] == created["id"]
        assert body["permissions"] == ["billing:manage", "projects:read"]
    refused = await host_client.get(
        f"/orgs/{org.id}/vault", headers={"Authorization": f"Bearer {created['key']}"}
    )
    assert_error(refused, 403, "INSUFFICIENT_ROLE")


async def test_require_org_role_refuses_keys_and_other_organizations_hide(
    host_client: httpx.AsyncClient, org: RoledOrg, factory: Factory
) -> None:
    created = await _key(host_client, org, ["billing:manage"])
    headers = {"X-API-Key": created["key"]}
    for path in ("admin-area", "app-admin-area"):
        assert_error(
            await host_client.get(f"/orgs/{org.id}/{path}", headers=headers),
            403,
            "API_KEY_NOT_ALLOWED",
        )
        assert_error(
            await host_client.get(f"/orgs/{uuid.uuid4()}/{path}", headers=headers),
            404,
            "ORGANIZATION_NOT_FOUND",
        )
    other = await factory.organization(org.outsider)
    assert_error(
        await host_client.get(f"/orgs/{other['id']}/billing", headers=headers),
        404,
        "ORGANIZATION_NOT_FOUND",
    )


async def test_current_principal_tells_users_and_keys_apart(
    host_client: httpx.AsyncClient, org: RoledOrg
) -> None:
    created = await _key(host_client, org, ["projects:read"])
    as_key = await host_client.get("/whoami", headers={"X-API-Key": created["key"]})
    as_user = await host_client.get("/whoami", headers=org.member.headers)
    assert as_key.json() == {"kind": "api_key", "id": created["id"]}
    assert as_user.json() == {"kind": "user", "id": str(org.member.id)}
    assert_error(await host_client.get("/whoami"), 401, "NOT_AUTHENTICATED")
