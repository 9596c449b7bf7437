"""examples/saas: organization-scoped projects guarded by ``require_org_permission`` and
``require_org_role``, a billing route for the host's own ``billing:manage`` permission, and
the host's own table and migrations next to orgauth's. Tenants are isolated: a user of one
organization cannot see, create or delete another's projects."""

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.embedding.helpers import (
    ROOT,
    Account,
    add_member,
    create_org,
    error_code,
    load_example,
    point_examples_at,
    register,
    run_host_alembic,
    running,
    sign_in,
    sign_up,
)
from tests.support.http import API, token_from_link
from tests.support.invitations import invitation_emails, invitation_links

APP_FILE = ROOT / "examples" / "saas" / "app.py"


@pytest.fixture
async def host_schema(db: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """The host's migrations applied on the (orgauth-migrated) test database, and removed
    afterwards so the rest of the suite sees orgauth's tables only."""
    await run_host_alembic(db, lambda config: command.upgrade(config, "head"))
    try:
        yield db
    finally:
        await run_host_alembic(db, lambda config: command.downgrade(config, "base"))
        async with db.begin() as connection:
            await connection.execute(text("DROP TABLE alembic_version"))


@pytest.fixture
def emails(tmp_path: Path) -> Path:
    return tmp_path / "emails"


@pytest.fixture
async def client(
    host_schema: AsyncEngine, database_url: str, emails: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    point_examples_at(monkeypatch, database_url, emails)
    module = load_example("examples.saas.app")
    async with running(module.app) as http:
        yield http


@dataclass
class Tenant:
    """An organization with an owner, an admin and a member."""

    id: uuid.UUID
    owner: Account
    admin: Account
    member: Account

    @property
    def projects(self) -> str:
        return f"/orgs/{self.id}/projects"

    @property
    def billing(self) -> str:
        return f"/orgs/{self.id}/billing"

    @property
    def api(self) -> str:
        """orgauth's own routes for this organization."""
        return f"{API}/organizations/{self.id}"


async def make_tenant(client: httpx.AsyncClient, name: str) -> Tenant:
    owner, admin, member = [await sign_up(client) for _ in range(3)]
    org_id = await create_org(client, owner, name)
    await add_member(client, org_id, owner, admin, "admin")
    await add_member(client, org_id, owner, member, "member")
    return Tenant(org_id, owner, admin, member)


async def create_project(client: httpx.AsyncClient, tenant: Tenant, name: str) -> dict[str, Any]:
    response = await client.post(tenant.projects, json={"name": name}, headers=tenant.admin.headers)
    assert response.status_code == 201, response.text
    project: dict[str, Any] = response.json()
    return project


# --- roles inside one organization ----------------------------------------------------------


async def test_admins_create_members_list(client: httpx.AsyncClient) -> None:
    acme = await make_tenant(client, "Acme")

    by_owner = await client.post(
        acme.projects, json={"name": "Zeppelin"}, headers=acme.owner.headers
    )
    by_admin = await client.post(acme.projects, json={"name": "Apollo"}, headers=acme.admin.headers)
    listed = await client.get(acme.projects, headers=acme.member.headers)

    assert by_owner.status_code == by_admin.status_code == 201
    assert by_admin.json()["organization_id"] == str(acme.id)
    assert by_admin.json()["created_by"] == str(acme.admin.id)
    assert [p["name"] for p in listed.json()] == ["Apollo", "Zeppelin"]


async def test_member_cannot_create_or_delete(client: httpx.AsyncClient) -> None:
    acme = await make_tenant(client, "Acme")
    project = await create_project(client, acme, "Apollo")

    created = await client.post(acme.projects, json={"name": "Nope"}, headers=acme.member.headers)
    deleted = await client.delete(f"{acme.projects}/{project['id']}", headers=acme.member.headers)
    listed = await client.get(acme.projects, headers=acme.member.headers)

    assert (created.status_code, error_code(created)) == (403, "INSUFFICIENT_ROLE")
    assert (deleted.status_code, error_code(deleted)) == (403, "INSUFFICIENT_ROLE")
    assert [p["id"] for p in listed.json()] == [project["id"]]


async def test_admin_deletes_a_project(client: httpx.AsyncClient) -> None:
    acme = await make_tenant(client, "Acme")
    project = await create_project(client, acme, "Apollo")

    deleted = await client.delete(f"{acme.projects}/{project['id']}", headers=acme.admin.headers)
    again = await client.delete(f"{acme.projects}/{project['id']}", headers=acme.admin.headers)
    listed = await client.get(acme.projects, headers=acme.member.headers)

    assert deleted.status_code == 204
    assert (again.status_code, error_code(again)) == (404, "PROJECT_NOT_FOUND")
    assert listed.json() == []


async def test_anonymous_callers_get_401(client: httpx.AsyncClient) -> None:
    acme = await make_tenant(client, "Acme")

    for path in (acme.projects, acme.billing):
        response = await client.get(path)

        assert (response.status_code, error_code(response)) == (401, "NOT_AUTHENTICATED")


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"name": "x" * 101}, {"name": "ok", "organization_id": "x"}]
)
async def test_invalid_or_unknown_fields_are_422(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    acme = await make_tenant(client, "Acme")

    response = await client.post(acme.projects, json=body, headers=acme.admin.headers)

    assert response.status_code == 422


# --- the app's permissions and a custom role (README: "A custom role for billing") ----------

BILLING_ROLE = {
    "key": "billing",
    "name": "Billing",
    "permissions": ["organization:read", "billing:manage"],
}


async def test_catalog_lists_the_apps_permissions(client: httpx.AsyncClient) -> None:
    acme = await make_tenant(client, "Acme")

    response = await client.get(f"{acme.api}/permissions", headers=acme.member.headers)

    assert response.status_code == 200, response.text
    host = {p["key"]: p for p in response.json() if not p["built_in"]}
    assert host == {
        "billing:manage": {
            "key": "billing:manage",
            "description": "Manage billing and invoices",
            "built_in": False,
        },
        "projects:read": {
            "key": "projects:read",
            "description": "List the organization's projects",
            "built_in": False,
        },
    }


async def test_custom_billing_role_reaches_the_billing_route(client: httpx.AsyncClient) -> None:
    """The README's story: the owner creates `billing`, gives it to a teammate; the teammate
    sees the bill, a plain member gets 403, an outsider 404."""
    acme = await make_tenant(client, "Acme")
    teammate, outsider = await sign_up(client), await sign_up(client)
    await create_project(client, acme, "Apollo")

    role = await client.post(f"{acme.api}/roles", json=BILLING_ROLE, headers=acme.owner.headers)
    added = await client.post(
        f"{acme.api}/members",
        json={"email": teammate.email, "role": "billing"},
        headers=acme.owner.headers,
    )
    by_teammate = await client.get(acme.billing, headers=teammate.headers)
    by_owner = await client.get(acme.billing, headers=acme.owner.headers)
    by_admin = await client.get(acme.billing, headers=acme.admin.headers)
    by_member = await client.get(acme.billing, headers=acme.member.headers)
    by_outsider = await client.get(acme.billing, headers=outsider.headers)
    teammate_projects = await client.get(acme.projects, headers=teammate.headers)

    assert role.status_code == 201, role.text
    assert role.json()["permissions"] == ["billing:manage", "organization:read"]
    assert role.json()["built_in"] is False
    assert added.status_code == 201, added.text
    assert added.json()["role"] == "billing"
    assert by_teammate.status_code == 200, by_teammate.text
    assert by_teammate.json() == {
        "organization_id": str(acme.id),
        "projects": 1,
        "amount_due_cents": 900,
        "viewed_as": "billing",
    }
    assert (by_owner.status_code, by_owner.json()["viewed_as"]) == (200, "owner")
    assert (by_admin.status_code, by_admin.json()["viewed_as"]) == (200, "admin")
    assert (by_member.status_code, error_code(by_member)) == (403, "INSUFFICIENT_ROLE")
    assert (by_outsider.status_code, error_code(by_outsider)) == (404, "ORGANIZATION_NOT_FOUND")
    # The role holds billing:manage only, not the members' projects:read.
    assert (teammate_projects.status_code, error_code(teammate_projects)) == (
        403,
        "INSUFFICIENT_ROLE",
    )


async def test_role_changes_apply_on_the_next_request(client: httpx.AsyncClient) -> None:
    acme = await make_tenant(client, "Acme")
    created = await client.post(f"{acme.api}/roles", json=BILLING_ROLE, headers=acme.owner.headers)
    assert created.status_code == 201, created.text
    member = f"{acme.api}/members/{acme.member.id}"

    promoted = await client.patch(member, json={"role": "billing"}, headers=acme.owner.headers)
    as_billing = await client.get(acme.billing, headers=acme.member.headers)
    demoted = await client.patch(member, json={"role": "member"}, headers=acme.owner.headers)
    as_member = await client.get(acme.billing, headers=acme.member.headers)

    assert promoted.status_code == demoted.status_code == 200
    assert as_billing.status_code == 200, as_billing.text
    assert (as_member.status_code, error_code(as_member)) == (403, "INSUFFICIENT_ROLE")


async def test_an_invited_teammate_joins_with_the_billing_role(
    client: httpx.AsyncClient, emails: Path
) -> None:
    tenant = await make_tenant(client, "Invites")
    role = await client.post(
        f"{tenant.api}/roles",
        json={"key": "billing", "name": "Billing", "permissions": ["billing:manage"]},
        headers=tenant.owner.headers,
    )
    assert role.status_code == 201, role.text
    address = f"teammate-{uuid.uuid4().hex[:8]}@example.com"

    invited = await client.post(
        f"{tenant.api}/invitations",
        json={"email": address, "role": "billing"},
        headers=tenant.owner.headers,
    )
    assert invited.status_code == 201, invited.text
    assert "oa_inv_" not in invited.text
    [message] = invitation_emails(emails, address)
    assert message["Subject"] == "You have been invited to join Invites"
    [link] = invitation_links(message)
    assert link.startswith("https://app.example.test/accept-invitation?token=oa_inv_")

    await register(client, address)
    teammate = await sign_in(client, address)
    assert (await client.get(tenant.billing, headers=teammate.headers)).status_code == 404
    accepted = await client.post(
        f"{API}/invitations/accept",
        json={"token": token_from_link(link)},
        headers=teammate.headers,
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["member"]["role"] == "billing"

    bill = await client.get(tenant.billing, headers=teammate.headers)
    assert bill.status_code == 200, bill.text
    assert bill.json()["viewed_as"] == "billing"
    history = await client.get(
        f"{tenant.api}/invitations", params={"status": "accepted"}, headers=tenant.owner.headers
    )
    assert [item["email"] for item in history.json()["data"]] == [address]


async def test_billing_of_another_tenant_is_a_404(client: httpx.AsyncClient) -> None:
    acme, globex = await make_tenant(client, "Acme"), await make_tenant(client, "Globex")
    await create_project(client, globex, "Secret plan")

    response = await client.get(globex.billing, headers=acme.owner.headers)
    own = await client.get(acme.billing, headers=acme.owner.headers)

    assert (response.status_code, error_code(response)) == (404, "ORGANIZATION_NOT_FOUND")
    assert own.json()["projects"] == 0


# --- isolation between organizations -------------------------------------------------------


async def test_other_tenants_projects_are_invisible(client: httpx.AsyncClient) -> None:
    acme, globex = await make_tenant(client, "Acme"), await make_tenant(client, "Globex")
    secret = await create_project(client, globex, "Secret plan")

    listed = await client.get(globex.projects, headers=acme.owner.headers)
    created = await client.post(
        globex.projects, json={"name": "Intrusion"}, headers=acme.owner.headers
    )
    deleted = await client.delete(f"{globex.projects}/{secret['id']}", headers=acme.owner.headers)
    # Acme's owner names Globex's project under Acme's own organization.
    smuggled = await client.delete(f"{acme.projects}/{secret['id']}", headers=acme.owner.headers)
    globex_view = await client.get(globex.projects, headers=globex.member.headers)

    for response in (listed, created, deleted):
        assert (response.status_code, error_code(response)) == (404, "ORGANIZATION_NOT_FOUND")
    assert (smuggled.status_code, error_code(smuggled)) == (404, "PROJECT_NOT_FOUND")
    assert [p["name"] for p in globex_view.json()] == ["Secret plan"]


async def test_removed_member_loses_access_at_once(client: httpx.AsyncClient) -> None:
    acme = await make_tenant(client, "Acme")
    await create_project(client, acme, "Apollo")

    removed = await client.delete(
        f"/api/v1/organizations/{acme.id}/members/{acme.member.id}", headers=acme.owner.headers
    )
    listed = await client.get(acme.projects, headers=acme.member.headers)

    assert removed.status_code == 204
    assert (listed.status_code, error_code(listed)) == (404, "ORGANIZATION_NOT_FOUND")


async def test_deleting_the_organization_deletes_its_projects(
    client: httpx.AsyncClient, host_schema: AsyncEngine
) -> None:
    from examples.saas.models import Project

    acme, globex = await make_tenant(client, "Acme"), await make_tenant(client, "Globex")
    await create_project(client, acme, "Apollo")
    kept = await create_project(client, globex, "Gemini")

    deleted = await client.delete(f"/api/v1/organizations/{acme.id}", headers=acme.owner.headers)
    async with host_schema.connect() as connection:
        remaining = (await connection.execute(select(Project.id))).scalars().all()  # type: ignore[call-overload]

    assert deleted.status_code == 204
    assert [str(project_id) for project_id in remaining] == [kept["id"]]


# --- running it ----------------------------------------------------------------------------


def test_runs_as_a_script_from_any_directory(tmp_path: Path, database_url: str) -> None:
    """`python examples/saas/app.py` finds its sibling models without the repository on the
    path (run here without starting a server)."""
    environment = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": "k" * 40}
    environment.pop("PYTHONPATH", None)
    code = (
        f"import runpy; app = runpy.run_path({str(APP_FILE)!r}, run_name='example')['app']; "
        "print(sorted(r.path for r in app.routes if '/orgs/' in getattr(r, 'path', '')))"
    )

    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "/orgs/{org_id}/projects" in result.stdout
    assert "/orgs/{org_id}/billing" in result.stdout


async def test_a_script_reads_with_an_api_key_but_cannot_act_as_a_person(
    client: httpx.AsyncClient,
) -> None:
    """The README's API key story."""
    acme = await make_tenant(client, "Acme")
    await create_project(client, acme, "Apollo")
    created = await client.post(
        f"{acme.api}/api-keys",
        json={"name": "nightly report", "permissions": ["projects:read", "billing:manage"]},
        headers=acme.admin.headers,
    )
    assert created.status_code == 201, created.text
    key = {"X-API-Key": created.json()["key"]}

    projects = await client.get(acme.projects, headers=key)
    billing = await client.get(acme.billing, headers=key)
    create = await client.post(acme.projects, json={"name": "From CI"}, headers=key)

    assert projects.status_code == 200, projects.text
    assert [p["name"] for p in projects.json()] == ["Apollo"]
    assert (billing.status_code, billing.json()["viewed_as"]) == (200, "api_key")
    assert (create.status_code, error_code(create)) == (403, "API_KEY_NOT_ALLOWED")
    # Its creator is removed from the organization: the key dies with their access.
    removed = await client.delete(f"{acme.api}/members/{acme.admin.id}", headers=acme.owner.headers)
    after = await client.get(acme.projects, headers=key)
    assert removed.status_code == 204
    assert (after.status_code, error_code(after)) == (401, "INVALID_API_KEY")
