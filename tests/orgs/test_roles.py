"""The role routes (docs/API.md, "Roles and permissions"): listing the roles and the
permission catalog, creating, updating and deleting custom roles, handing them to members,
and what strangers, plain members and superusers get on each route.

The expected permission sets are written out by hand from the catalog table, not read from
the module under test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth import OrgAuth, OrgPermission, migrate
from orgauth.app import create_app
from orgauth.db import create_engine
from orgauth.models import OrganizationRole, OrgRole, utcnow
from orgauth.settings import OrgAuthSettings, normalize_database_url
from tests.support.http import ClientFactory
from tests.support.orgs import (
    API,
    MEMBER_KEYS,
    PEER,
    Account,
    Factory,
    RoledOrg,
    assert_error,
    assert_validation_error,
    audit_event,
)
from tests.support.roles import (
    ADMIN_PERMISSIONS,
    BUILT_IN_PERMISSIONS,
    MEMBER_PERMISSIONS,
    create_role,
    role_body,
    role_rows,
)
from tests.support.settings import TEST_DATABASE_ENV, is_postgres_run, make_settings

ROLE_KEYS = {
    "key",
    "name",
    "description",
    "permissions",
    "built_in",
    "member_count",
    "created_at",
    "updated_at",
}
PERMISSION_KEYS = {"key", "description", "built_in"}
#: Host permissions for the apps built with ``ORG_PERMISSIONS`` below.
HOST_SETTING = (
    '[{"key": "billing:manage", "description": "Manage billing", "min_role": "member"},'
    ' "reports:read",'
    ' {"key": "vault:open", "min_role": "owner"}]'
)


async def list_roles(
    client: httpx.AsyncClient, org: RoledOrg, caller: Account
) -> dict[str, dict[str, Any]]:
    response = await client.get(f"{org.url}/roles", headers=caller.headers)
    assert response.status_code == 200, response.text
    return {role["key"]: role for role in response.json()}


def _aware(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None, value
    return parsed


# --- listing roles --------------------------------------------------------------------


async def test_roles_list_built_ins_then_custom_roles_by_key_with_member_counts(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    # Keys that sort differently by code point and by a locale's collation.
    for key in ("zeta", "a_b", "ab", "a-b", "a1"):
        await create_role(client, roled_org, key, ["members:read", "organization:read"])
    for _ in range(2):
        await factory.add_membership(roled_org.id, await factory.user(), "ab")
    await factory.add_membership(roled_org.id, await factory.user(), OrgRole.MEMBER)

    response = await client.get(f"{roled_org.url}/roles", headers=roled_org.member.headers)

    assert response.status_code == 200, response.text
    roles = response.json()
    assert [role["key"] for role in roles] == [
        "owner",
        "admin",
        "member",
        "a-b",
        "a1",
        "a_b",
        "ab",
        "zeta",
    ]
    assert all(set(role) == ROLE_KEYS for role in roles)
    counts = {role["key"]: role["member_count"] for role in roles}
    assert counts == {
        "owner": 1,
        "admin": 1,
        "member": 2,
        "a-b": 0,
        "a1": 0,
        "a_b": 0,
        "ab": 2,
        "zeta": 0,
    }


@pytest.fixture
async def icu_database_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database whose default collation is ICU English (as many
    clusters are initialised), migrated; dropped afterwards."""
    if not is_postgres_run():
        pytest.skip("needs PostgreSQL: set ORGAUTH_TEST_DATABASE_URL")
    import asyncpg

    base = make_url(normalize_database_url(os.environ[TEST_DATABASE_ENV]))
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"orgauth_icu_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(
            f"CREATE DATABASE \"{name}\" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
        )
    except asyncpg.PostgresError as exc:
        await connection.close()
        pytest.skip(f"this PostgreSQL cannot create an ICU database: {exc}")
    url = base.set(drivername="postgresql+asyncpg", database=name).render_as_string(
        hide_password=False
    )
    try:
        engine = create_engine(OrgAuthSettings(_env_file=None, database_url=url))
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()
        yield url
    finally:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()


async def test_custom_roles_are_listed_by_code_point_whatever_the_database_collation(
    icu_database_url: str, tmp_path: Path
) -> None:
    """Under an English collation ``a_b`` sorts before ``a-b`` and ``a1``; the API lists
    keys in one order on every database."""
    app = create_app(make_settings(icu_database_url, tmp_path))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=PEER)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            engine = create_engine(OrgAuthSettings(_env_file=None, database_url=icu_database_url))
            try:
                org = await Factory(engine, http).roled_org()
            finally:
                await engine.dispose()
            for key in ("zeta", "ab", "a_b", "a1", "a-b"):
                await create_role(http, org, key)
            listed = await http.get(f"{org.url}/roles", headers=org.member.headers)
    assert [role["key"] for role in listed.json()][3:] == ["a-b", "a1", "a_b", "ab", "zeta"]


async def test_built_in_roles_are_listed_with_their_permissions_and_no_timestamps(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    roles = await list_roles(client, roled_org, roled_org.member)
    expected = {
        "owner": ("Owner", BUILT_IN_PERMISSIONS),
        "admin": ("Admin", ADMIN_PERMISSIONS),
        "member": ("Member", MEMBER_PERMISSIONS),
    }
    for key, (name, permissions) in expected.items():
        assert roles[key] == {
            "key": key,
            "name": name,
            "description": None,
            "permissions": permissions,
            "built_in": True,
            "member_count": 1,
            "created_at": None,
            "updated_at": None,
        }


async def test_custom_roles_are_listed_with_sorted_permissions_and_timestamps(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    await create_role(
        client,
        roled_org,
        "support",
        ["organization:read", "members:read", "audit_logs:read"],
        name="Support",
        description="Helps customers",
    )
    role = (await list_roles(client, roled_org, roled_org.member))["support"]
    assert role["permissions"] == ["audit_logs:read", "members:read", "organization:read"]
    assert (role["name"], role["description"], role["built_in"]) == (
        "Support",
        "Helps customers",
        False,
    )
    assert _aware(role["created_at"]) == _aware(role["updated_at"])


async def test_host_permissions_reach_the_built_in_roles_by_min_role(
    make_app: ClientFactory, factory: Factory
) -> None:
    host = await make_app(org_permissions=HOST_SETTING)
    org = await factory.roled_org()
    response = await host.client.get(f"{org.url}/roles", headers=org.member.headers)
    assert response.status_code == 200, response.text
    roles = {role["key"]: role["permissions"] for role in response.json()}
    assert roles["owner"] == sorted(
        [*BUILT_IN_PERMISSIONS, "billing:manage", "reports:read", "vault:open"]
    )
    assert roles["admin"] == sorted([*ADMIN_PERMISSIONS, "billing:manage", "reports:read"])
    assert roles["member"] == sorted([*MEMBER_PERMISSIONS, "billing:manage"])


async def test_host_permissions_given_in_code_and_in_the_setting_are_merged(
    db: AsyncEngine, database_url: str, tmp_path: Path, factory: Factory
) -> None:
    settings = make_settings(database_url, tmp_path, org_permissions='["reports:read"]')
    auth = OrgAuth(
        settings,
        prune_interval_seconds=None,
        permissions=["tickets:close", OrgPermission("wiki:read", "Read the wiki", "member")],
    )
    app = FastAPI(lifespan=auth.lifespan)
    auth.install(app)
    org = await factory.roled_org()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=PEER)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            catalog = await http.get(f"{org.url}/permissions", headers=org.member.headers)
            roles = await http.get(f"{org.url}/roles", headers=org.member.headers)
    assert catalog.status_code == 200, catalog.text
    host = {p["key"]: p for p in catalog.json() if not p["built_in"]}
    assert host == {
        "reports:read": {"key": "reports:read", "description": "", "built_in": False},
        "tickets:close": {"key": "tickets:close", "description": "", "built_in": False},
        "wiki:read": {"key": "wiki:read", "description": "Read the wiki", "built_in": False},
    }
    by_key = {role["key"]: role["permissions"] for role in roles.json()}
    assert by_key["member"] == sorted([*MEMBER_PERMISSIONS, "wiki:read"])
    assert by_key["admin"] == sorted(
        [*ADMIN_PERMISSIONS, "reports:read", "tickets:close", "wiki:read"]
    )


# --- the permission catalog -------------------------------------------------------------


async def test_permission_catalog_lists_the_built_in_permissions_sorted(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    response = await client.get(f"{roled_org.url}/permissions", headers=roled_org.member.headers)
    assert response.status_code == 200, response.text
    catalog = response.json()
    assert [p["key"] for p in catalog] == BUILT_IN_PERMISSIONS
    assert all(set(p) == PERMISSION_KEYS for p in catalog)
    assert all(p["built_in"] is True for p in catalog)
    assert all(isinstance(p["description"], str) and p["description"] for p in catalog)


async def test_permission_catalog_sorts_host_permissions_among_built_in_ones(
    make_app: ClientFactory, factory: Factory
) -> None:
    host = await make_app(org_permissions=HOST_SETTING)
    org = await factory.roled_org()
    response = await host.client.get(f"{org.url}/permissions", headers=org.member.headers)
    assert response.status_code == 200, response.text
    catalog = response.json()
    keys = [p["key"] for p in catalog]
    assert keys == sorted([*BUILT_IN_PERMISSIONS, "billing:manage", "reports:read", "vault:open"])
    flags = {p["key"]: p["built_in"] for p in catalog}
    assert {k for k, built_in in flags.items() if not built_in} == {
        "billing:manage",
        "reports:read",
        "vault:open",
    }
    assert {p["key"]: p["description"] for p in catalog}["billing:manage"] == "Manage billing"


# --- creating ---------------------------------------------------------------------------


async def test_create_role_answers_201_with_the_role_stored_sorted_and_deduplicated(
    client: httpx.AsyncClient,
    db: AsyncEngine,
    roled_org: RoledOrg,
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = utcnow() - timedelta(seconds=1)
    response = await client.post(
        f"{roled_org.url}/roles",
        json={
            "key": "billing-team_2",
            "name": "  Billing team  ",
            "description": "Pays the bills",
            "permissions": ["members:read", "organization:read", "members:read", "audit_logs:read"],
        },
        headers=roled_org.owner.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == ROLE_KEYS
    expected = ["audit_logs:read", "members:read", "organization:read"]
    assert {k: v for k, v in body.items() if k not in {"created_at", "updated_at"}} == {
        "key": "billing-team_2",
        "name": "Billing team",
        "description": "Pays the bills",
        "permissions": expected,
        "built_in": False,
        "member_count": 0,
    }
    assert _aware(body["created_at"]) >= before
    assert _aware(body["updated_at"]) == _aware(body["created_at"])
    row = (await role_rows(db, roled_org.id))["billing-team_2"]
    assert (row["name"], row["description"], row["permissions"]) == (
        "Billing team",
        "Pays the bills",
        expected,
    )
    assert audit_event(caplog, "role.created").__dict__["key"] == "billing-team_2"


async def test_create_role_without_description_or_permissions_is_allowed(
    client: httpx.AsyncClient, db: AsyncEngine, roled_org: RoledOrg
) -> None:
    response = await client.post(
        f"{roled_org.url}/roles",
        json={"key": "nobody", "name": "Nobody", "permissions": []},
        headers=roled_org.owner.headers,
    )
    assert response.status_code == 201, response.text
    assert (response.json()["description"], response.json()["permissions"]) == (None, [])
    assert (await role_rows(db, roled_org.id))["nobody"]["permissions"] == []


async def test_role_keys_at_the_edges_of_the_pattern_are_accepted(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    for key in ("a", "z" * 32, "a-_09", "x-"):
        created = await create_role(client, roled_org, key)
        assert created["key"] == key


async def test_malformed_role_keys_are_field_errors_and_nothing_is_stored(
    client: httpx.AsyncClient, db: AsyncEngine, roled_org: RoledOrg
) -> None:
    bad = ["", "Billing", "1team", "-team", "_team", "a b", "a.b", "a:b", "é", "team\n", "a" * 33]
    for key in bad:
        response = await client.post(
            f"{roled_org.url}/roles", json=role_body(key), headers=roled_org.owner.headers
        )
        assert response.status_code == 422, (key, response.text)
        assert isinstance(response.json()["detail"], list), (key, response.text)
    assert await role_rows(db, roled_org.id) == {}


async def test_role_names_are_trimmed_bounded_and_free_of_control_characters(
    client: httpx.AsyncClient, db: AsyncEngine, roled_org: RoledOrg
) -> None:
    bad = ["", "   ", "a\x00b", "line\nbreak", "tab\there", "bell\x07", "del\x7f", "n" * 101]
    for index, name in enumerate(bad):
        response = await client.post(
            f"{roled_org.url}/roles",
            json=role_body(f"bad{index}", name=name),
            headers=roled_org.owner.headers,
        )
        assert_validation_error(response)
    assert await role_rows(db, roled_org.id) == {}
    longest = await create_role(client, roled_org, "longest", name="n" * 100)
    assert longest["name"] == "n" * 100
    trimmed = await create_role(client, roled_org, "trimmed", name="\u00a0 Ops\u00a0 ")
    assert trimmed["name"] == "Ops"


async def test_role_descriptions_are_at_most_500_characters(
    client: httpx.AsyncClient, db: AsyncEngine, roled_org: RoledOrg
) -> None:
    too_long = await client.post(
        f"{roled_org.url}/roles",
        json=role_body("long", description="d" * 501),
        headers=roled_org.owner.headers,
    )
    assert_validation_error(too_long)
    control = await client.post(
        f"{roled_org.url}/roles",
        json=role_body("ctrl", description="nul\x00byte"),
        headers=roled_org.owner.headers,
    )
    assert_validation_error(control)
    assert await role_rows(db, roled_org.id) == {}
    created = await create_role(client, roled_org, "long", description="d" * 500)
    assert created["description"] == "d" * 500


async def test_more_than_100_permissions_is_422_but_100_entries_are_accepted(
    client: httpx.AsyncClient, db: AsyncEngine, roled_org: RoledOrg
) -> None:
    too_many = await client.post(
        f"{roled_org.url}/roles",
        json=role_body("many", ["organization:read"] * 101),
        headers=roled_org.owner.headers,
    )
    assert_validation_error(too_many)
    assert await role_rows(db, roled_org.id) == {}
    hundred = await create_role(
        client, roled_org, "many", ["members:read", "organization:read"] * 50
    )
    assert hundred["permissions"] == ["members:read", "organization:read"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"key": "k", "name": "K"}, id="permissions-missing"),
        pytest.param({"key": "k", "name": "K", "permissions": None}, id="permissions-null"),
        pytest.param({"key": "k", "permissions": []}, id="name-missing"),
        pytest.param({"key": "k", "name": None, "permissions": []}, id="name-null"),
        pytest.param({"name": "K", "permissions": []}, id="key-missing"),
        pytest.param({"key": "k", "name": "K", "permissions": "organization:read"}, id="str"),
        pytest.param({"key": "k", "name": "K", "permissions": [""]}, id="empty-permission"),
        pytest.param({"key": "k", "name": "K", "permissions": ["a:" + "b" * 63]}, id="65-chars"),
        pytest.param({"key": "k", "name": "K", "permissions": [], "built_in": True}, id="extra"),
    ],
)
async def test_malformed_create_bodies_are_422_field_errors(
    client: httpx.AsyncClient, db: AsyncEngine, roled_org: RoledOrg, body: dict[str, Any]
) -> None:
    response = await client.post(
        f"{roled_org.url}/roles", json=body, headers=roled_org.owner.headers
    )
    assert_validation_error(response)
    assert await role_rows(db, roled_org.id) == {}


async def test_permissions_outside_the_catalog_are_422_unknown_permission(
    client: httpx.AsyncClient, db: AsyncEngine, roled_org: RoledOrg
) -> None:
    for permissions in (
        ["ghost:read"],
        ["organization:read", "billing:manage"],
        ["Organization:Read"],
        ["organization:*"],
        ["organization"],
    ):
        response = await client.post(
            f"{roled_org.url}/roles",
            json=role_body("ghostly", permissions),
            headers=roled_org.owner.headers,
        )
        assert_error(response, 422, "UNKNOWN_PERMISSION")
    assert await role_rows(db, roled_org.id) == {}


async def test_existing_and_built_in_role_keys_are_409_role_key_taken(
    client: httpx.AsyncClient, db: AsyncEngine, roled_org: RoledOrg
) -> None:
    await create_role(client, roled_org, "support", ["organization:read"], name="Support")
    before = await role_rows(db, roled_org.id)
    for key in ("support", "owner", "admin", "member"):
        response = await client.post(
            f"{roled_org.url}/roles",
            json=role_body(key, ["members:read"], name="Impostor"),
            headers=roled_org.owner.headers,
        )
        assert_error(response, 409, "ROLE_KEY_TAKEN")
    assert await role_rows(db, roled_org.id) == before
    roles = await list_roles(client, roled_org, roled_org.owner)
    assert roles["member"]["permissions"] == MEMBER_PERMISSIONS


async def test_the_same_key_may_be_used_by_another_organization(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    other = await factory.roled_org()
    await create_role(client, roled_org, "support", ["organization:read"])
    created = await create_role(client, other, "support", ["members:read"])
    assert created["permissions"] == ["members:read"]
    mine = await list_roles(client, roled_org, roled_org.owner)
    assert mine["support"]["permissions"] == ["organization:read"]


async def test_the_51st_custom_role_is_409_role_limit_reached(
    client: httpx.AsyncClient, db: AsyncEngine, factory: Factory, roled_org: RoledOrg
) -> None:
    now = utcnow()
    async with db.begin() as connection:
        await connection.execute(
            insert(OrganizationRole),
            [
                {
                    "id": uuid.uuid4(),
                    "organization_id": roled_org.id,
                    "key": f"role-{index:02d}",
                    "name": f"Role {index}",
                    "permissions": ["organization:read"],
                    "created_at": now,
                    "updated_at": now,
                }
                for index in range(49)
            ],
        )
    await create_role(client, roled_org, "the-fiftieth")
    refused = await client.post(
        f"{roled_org.url}/roles", json=role_body("one-too-many"), headers=roled_org.owner.headers
    )
    assert_error(refused, 409, "ROLE_LIMIT_REACHED")
    assert len(await role_rows(db, roled_org.id)) == 50
    listed = await client.get(f"{roled_org.url}/roles", headers=roled_org.member.headers)
    keys = [role["key"] for role in listed.json()]
    assert len(keys) == 53
    assert keys[3:] == sorted(keys[3:])

    # The limit is per organization, and deleting a role makes room again.
    other = await factory.roled_org()
    await create_role(client, other, "one-too-many")
    deleted = await client.delete(f"{roled_org.url}/roles/role-00", headers=roled_org.owner.headers)
    assert deleted.status_code == 204, deleted.text
    await create_role(client, roled_org, "one-too-many")


# --- updating ---------------------------------------------------------------------------


async def test_patch_changes_only_the_fields_given(
    client: httpx.AsyncClient,
    db: AsyncEngine,
    factory: Factory,
    roled_org: RoledOrg,
    caplog: pytest.LogCaptureFixture,
) -> None:
    created = await create_role(
        client, roled_org, "support", ["organization:read"], name="Support", description="Help"
    )
    await factory.add_membership(roled_org.id, await factory.user(), "support")
    url = f"{roled_org.url}/roles/support"

    renamed = await client.patch(url, json={"name": " Helpdesk "}, headers=roled_org.owner.headers)
    assert renamed.status_code == 200, renamed.text
    body = renamed.json()
    assert set(body) == ROLE_KEYS
    assert (body["name"], body["description"], body["permissions"]) == (
        "Helpdesk",
        "Help",
        ["organization:read"],
    )
    assert (body["member_count"], body["built_in"], body["key"]) == (1, False, "support")
    assert body["created_at"] == created["created_at"]
    assert _aware(body["updated_at"]) >= _aware(created["updated_at"])
    assert audit_event(caplog, "role.updated").__dict__["fields"] == ["name"]

    regranted = await client.patch(
        url,
        json={"permissions": ["members:read", "organization:read", "members:read"]},
        headers=roled_org.owner.headers,
    )
    assert regranted.status_code == 200, regranted.text
    assert (regranted.json()["name"], regranted.json()["description"]) == ("Helpdesk", "Help")
    assert regranted.json()["permissions"] == ["members:read", "organization:read"]

    cleared = await client.patch(url, json={"description": None}, headers=roled_org.owner.headers)
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["description"] is None
    row = (await role_rows(db, roled_org.id))["support"]
    assert (row["name"], row["description"], row["permissions"]) == (
        "Helpdesk",
        None,
        ["members:read", "organization:read"],
    )


async def test_patch_of_an_unknown_role_is_404_role_not_found(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    other = await factory.roled_org()
    await create_role(client, other, "theirs")
    for key in ("nope", "theirs", "Owner", "OWNER"):
        response = await client.patch(
            f"{roled_org.url}/roles/{key}", json={"name": "X"}, headers=roled_org.owner.headers
        )
        assert_error(response, 404, "ROLE_NOT_FOUND")
    too_long = await client.patch(
        f"{roled_org.url}/roles/{'r' * 33}", json={"name": "X"}, headers=roled_org.owner.headers
    )
    assert_validation_error(too_long)


@pytest.mark.parametrize("key", ["owner", "admin", "member"])
async def test_built_in_roles_cannot_be_changed_or_deleted(
    client: httpx.AsyncClient, roled_org: RoledOrg, key: str
) -> None:
    url = f"{roled_org.url}/roles/{key}"
    bodies: list[dict[str, Any]] = [{"name": "Boss"}, {"permissions": []}, {"description": "x"}, {}]
    for body in bodies:
        assert_error(
            await client.patch(url, json=body, headers=roled_org.owner.headers),
            409,
            "BUILT_IN_ROLE",
        )
    assert_error(await client.delete(url, headers=roled_org.owner.headers), 409, "BUILT_IN_ROLE")
    roles = await list_roles(client, roled_org, roled_org.owner)
    assert roles[key]["name"] == key.title()
    assert roles["owner"]["permissions"] == BUILT_IN_PERMISSIONS


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"name": None}, id="name-null"),
        pytest.param({"permissions": None}, id="permissions-null"),
        pytest.param({"name": "   "}, id="name-blank"),
        pytest.param({"name": "bad\x1bname"}, id="name-escape"),
        pytest.param({"description": "d" * 501}, id="description-501"),
        pytest.param({"permissions": ["organization:read"] * 101}, id="permissions-101"),
        pytest.param({"key": "renamed"}, id="key-immutable"),
        pytest.param({"built_in": True}, id="extra"),
    ],
)
async def test_malformed_patch_bodies_are_422_and_change_nothing(
    client: httpx.AsyncClient, db: AsyncEngine, roled_org: RoledOrg, body: dict[str, Any]
) -> None:
    await create_role(client, roled_org, "support", description="Help")
    before = await role_rows(db, roled_org.id)
    response = await client.patch(
        f"{roled_org.url}/roles/support", json=body, headers=roled_org.owner.headers
    )
    assert_validation_error(response)
    assert await role_rows(db, roled_org.id) == before


async def test_patch_with_unknown_permissions_is_422_and_changes_nothing(
    client: httpx.AsyncClient, db: AsyncEngine, roled_org: RoledOrg
) -> None:
    await create_role(client, roled_org, "support")
    before = await role_rows(db, roled_org.id)
    response = await client.patch(
        f"{roled_org.url}/roles/support",
        json={"name": "New", "permissions": ["organization:read", "ghost:read"]},
        headers=roled_org.owner.headers,
    )
    assert_error(response, 422, "UNKNOWN_PERMISSION")
    assert await role_rows(db, roled_org.id) == before


# --- deleting ---------------------------------------------------------------------------


async def test_delete_role_answers_204_and_the_role_is_gone(
    client: httpx.AsyncClient,
    db: AsyncEngine,
    roled_org: RoledOrg,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await create_role(client, roled_org, "temp")
    await create_role(client, roled_org, "keep")
    response = await client.delete(f"{roled_org.url}/roles/temp", headers=roled_org.owner.headers)
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert set(await role_rows(db, roled_org.id)) == {"keep"}
    assert "temp" not in await list_roles(client, roled_org, roled_org.owner)
    assert audit_event(caplog, "role.deleted").__dict__["key"] == "temp"
    again = await client.delete(f"{roled_org.url}/roles/temp", headers=roled_org.owner.headers)
    assert_error(again, 404, "ROLE_NOT_FOUND")


async def test_a_role_held_by_a_member_is_409_role_in_use_until_reassigned(
    client: httpx.AsyncClient, db: AsyncEngine, factory: Factory, roled_org: RoledOrg
) -> None:
    await create_role(client, roled_org, "support")
    assigned = await client.patch(
        roled_org.member_url(roled_org.member.id),
        json={"role": "support"},
        headers=roled_org.owner.headers,
    )
    assert assigned.status_code == 200, assigned.text
    url = f"{roled_org.url}/roles/support"
    assert_error(await client.delete(url, headers=roled_org.owner.headers), 409, "ROLE_IN_USE")
    assert "support" in await role_rows(db, roled_org.id)
    assert await factory.role_of(roled_org.id, roled_org.member.id) == "support"

    back = await client.patch(
        roled_org.member_url(roled_org.member.id),
        json={"role": "member"},
        headers=roled_org.owner.headers,
    )
    assert back.status_code == 200, back.text
    deleted = await client.delete(url, headers=roled_org.owner.headers)
    assert deleted.status_code == 204, deleted.text
    assert await role_rows(db, roled_org.id) == {}


async def test_a_role_held_in_another_organization_does_not_count_as_in_use(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    other = await factory.roled_org()
    await create_role(client, roled_org, "support")
    await create_role(client, other, "support")
    await factory.add_membership(other.id, await factory.user(), "support")
    deleted = await client.delete(f"{roled_org.url}/roles/support", headers=roled_org.owner.headers)
    assert deleted.status_code == 204, deleted.text
    assert (await list_roles(client, other, other.owner))["support"]["member_count"] == 1


# --- members holding custom roles -------------------------------------------------------


async def test_members_added_or_changed_to_a_custom_role_carry_its_permissions(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    await create_role(client, roled_org, "auditor", ["organization:read", "audit_logs:read"])
    added = await client.post(
        f"{roled_org.url}/members",
        json={"user_id": str(roled_org.outsider.id), "role": "auditor"},
        headers=roled_org.admin.headers,
    )
    assert added.status_code == 201, added.text
    assert set(added.json()) == MEMBER_KEYS
    assert (added.json()["role"], added.json()["permissions"]) == (
        "auditor",
        ["audit_logs:read", "organization:read"],
    )
    changed = await client.patch(
        roled_org.member_url(roled_org.member.id),
        json={"role": "auditor"},
        headers=roled_org.admin.headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["permissions"] == ["audit_logs:read", "organization:read"]
    assert await factory.role_of(roled_org.id, roled_org.member.id) == "auditor"

    listed = await client.get(
        f"{roled_org.url}/members", params={"role": "auditor"}, headers=roled_org.owner.headers
    )
    assert listed.status_code == 200, listed.text
    assert {m["user_id"] for m in listed.json()["data"]} == {
        str(roled_org.outsider.id),
        str(roled_org.member.id),
    }
    everyone = await client.get(f"{roled_org.url}/members", headers=roled_org.owner.headers)
    permissions = {m["role"]: m["permissions"] for m in everyone.json()["data"]}
    assert permissions == {
        "owner": BUILT_IN_PERMISSIONS,
        "admin": ADMIN_PERMISSIONS,
        "auditor": ["audit_logs:read", "organization:read"],
    }
    roles = await list_roles(client, roled_org, roled_org.owner)
    assert (roles["auditor"]["member_count"], roles["member"]["member_count"]) == (2, 0)


async def test_my_organizations_carry_the_effective_permissions_of_a_custom_role(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    await create_role(client, roled_org, "auditor", ["audit_logs:read", "organization:read"])
    await factory.add_membership(roled_org.id, roled_org.outsider.id, "auditor")
    response = await client.get(f"{API}/organizations/me", headers=roled_org.outsider.headers)
    assert response.status_code == 200, response.text
    [mine] = response.json()
    assert (mine["id"], mine["role"]) == (str(roled_org.id), "auditor")
    assert mine["permissions"] == ["audit_logs:read", "organization:read"]
    member = await client.get(f"{API}/organizations/me", headers=roled_org.member.headers)
    assert member.json()[0]["permissions"] == MEMBER_PERMISSIONS


async def test_a_superuser_member_holds_every_permission_in_my_organizations(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg, superuser: Account
) -> None:
    await create_role(client, roled_org, "nothing", [])
    await factory.add_membership(roled_org.id, superuser.id, "nothing")
    response = await client.get(f"{API}/organizations/me", headers=superuser.headers)
    [mine] = response.json()
    assert (mine["role"], mine["permissions"]) == ("nothing", BUILT_IN_PERMISSIONS)


async def test_host_permissions_no_longer_configured_are_ignored_and_not_shown(
    make_app: ClientFactory, client: httpx.AsyncClient, db: AsyncEngine, factory: Factory
) -> None:
    host = await make_app(org_permissions=HOST_SETTING)
    org = await factory.roled_org()
    created = await host.client.post(
        f"{org.url}/roles",
        json=role_body("biller", ["billing:manage", "members:read", "organization:read"]),
        headers=org.owner.headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["permissions"] == ["billing:manage", "members:read", "organization:read"]
    await factory.add_membership(org.id, org.outsider.id, "biller")

    # The default app has no host permissions: the same row, read there.
    shown = ["members:read", "organization:read"]
    roles = await list_roles(client, org, org.owner)
    assert roles["biller"]["permissions"] == shown
    assert roles["member"]["permissions"] == MEMBER_PERMISSIONS
    mine = await client.get(f"{API}/organizations/me", headers=org.outsider.headers)
    assert mine.json()[0]["permissions"] == shown
    members = await client.get(f"{org.url}/members", headers=org.owner.headers)
    by_user = {m["user_id"]: m for m in members.json()["data"]}
    assert by_user[str(org.outsider.id)]["permissions"] == shown
    catalog = await client.get(f"{org.url}/permissions", headers=org.owner.headers)
    assert [p["key"] for p in catalog.json()] == BUILT_IN_PERMISSIONS
    renamed = await client.patch(
        f"{org.url}/roles/biller", json={"name": "Billing"}, headers=org.owner.headers
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["permissions"] == shown
    # The default app does not know the host permission: it cannot be granted there.
    regrant = await client.patch(
        f"{org.url}/roles/biller",
        json={"permissions": ["billing:manage"]},
        headers=org.owner.headers,
    )
    assert_error(regrant, 422, "UNKNOWN_PERMISSION")

    # Nothing was rewritten: the app that configures the permission still sees it.
    stored = (await role_rows(db, org.id))["biller"]["permissions"]
    assert stored == ["billing:manage", "members:read", "organization:read"]
    again = await host.client.get(f"{org.url}/roles", headers=org.owner.headers)
    assert {r["key"]: r["permissions"] for r in again.json()}["biller"] == stored


# --- who may call the role routes -------------------------------------------------------


def _role_calls(org_id: uuid.UUID) -> list[tuple[str, str, Any]]:
    """Every role route, with bodies well formed but wrong for the organization in every
    way a member could be told (method, url, body)."""
    base = f"{API}/organizations/{org_id}"
    return [
        ("GET", f"{base}/roles", None),
        ("GET", f"{base}/permissions", None),
        ("POST", f"{base}/roles", role_body("sneaky", ["organization:read"])),
        ("POST", f"{base}/roles", role_body("support")),  # taken
        ("POST", f"{base}/roles", role_body("owner")),  # built in
        ("POST", f"{base}/roles", role_body("ghosts", ["ghost:read"])),  # unknown permission
        ("POST", f"{base}/roles", role_body("deleter", ["organization:delete"])),
        ("PATCH", f"{base}/roles/support", {"name": "Mine now"}),
        ("PATCH", f"{base}/roles/support", {"permissions": ["ghost:read"]}),
        ("PATCH", f"{base}/roles/owner", {"name": "Mine now"}),
        ("PATCH", f"{base}/roles/unknown", {"name": "Mine now"}),
        ("DELETE", f"{base}/roles/support", None),
        ("DELETE", f"{base}/roles/owner", None),
        ("DELETE", f"{base}/roles/unknown", None),
    ]


async def test_strangers_get_404_on_every_role_route_before_any_other_check(
    client: httpx.AsyncClient, db: AsyncEngine, factory: Factory, roled_org: RoledOrg
) -> None:
    await create_role(client, roled_org, "support")
    other = await factory.roled_org()  # the outsider's own organization: no help here
    await create_role(client, other, "support")
    before = await role_rows(db, roled_org.id)
    for caller, org_id in (
        (roled_org.outsider, roled_org.id),
        (other.owner, roled_org.id),
        (roled_org.owner, uuid.uuid4()),
    ):
        for method, url, body in _role_calls(org_id):
            response = await client.request(method, url, json=body, headers=caller.headers)
            assert response.status_code == 404, (method, url, body, response.text)
            assert_error(response, 404, "ORGANIZATION_NOT_FOUND")
    assert await role_rows(db, roled_org.id) == before


async def test_bodies_malformed_whatever_the_organization_are_422_even_for_strangers(
    client: httpx.AsyncClient, db: AsyncEngine, roled_org: RoledOrg
) -> None:
    """docs/API.md: only a body or path malformed whatever the organization comes before
    the stranger's 404; it says nothing about the organization."""
    stranger = roled_org.outsider
    for org_id in (roled_org.id, uuid.uuid4()):
        base = f"{API}/organizations/{org_id}"
        for method, url, body in (
            ("POST", f"{base}/roles", {"key": "NOT A KEY", "name": "X", "permissions": []}),
            ("POST", f"{base}/roles", {}),
            ("PATCH", f"{base}/roles/support", {"name": None}),
            ("PATCH", f"{base}/roles/{'r' * 33}", {"name": "X"}),
            ("DELETE", f"{base}/roles/{'r' * 33}", None),
        ):
            response = await client.request(method, url, json=body, headers=stranger.headers)
            assert_validation_error(response)
    assert await role_rows(db, roled_org.id) == {}


async def test_members_without_roles_manage_get_403_on_role_changes(
    client: httpx.AsyncClient, db: AsyncEngine, roled_org: RoledOrg
) -> None:
    """The permission is checked before the route's own rules: 403 even for a built-in,
    an unknown or a taken key."""
    await create_role(client, roled_org, "support")
    before = await role_rows(db, roled_org.id)
    base = roled_org.url
    for method, url, body in (
        ("POST", f"{base}/roles", role_body("sneaky", ["organization:read"])),
        ("POST", f"{base}/roles", role_body("support")),
        ("POST", f"{base}/roles", role_body("owner")),
        ("POST", f"{base}/roles", role_body("ghosts", ["ghost:read"])),
        ("PATCH", f"{base}/roles/support", {"permissions": MEMBER_PERMISSIONS}),
        ("PATCH", f"{base}/roles/owner", {"name": "Mine now"}),
        ("PATCH", f"{base}/roles/unknown", {"name": "Mine now"}),
        ("DELETE", f"{base}/roles/support", None),
        ("DELETE", f"{base}/roles/member", None),
        ("DELETE", f"{base}/roles/unknown", None),
    ):
        response = await client.request(method, url, json=body, headers=roled_org.member.headers)
        assert response.status_code == 403, (method, url, body, response.text)
        assert_error(response, 403, "INSUFFICIENT_ROLE")
    assert await role_rows(db, roled_org.id) == before
    for path in ("roles", "permissions"):
        response = await client.get(f"{base}/{path}", headers=roled_org.member.headers)
        assert response.status_code == 200, response.text


async def test_a_superuser_who_is_not_a_member_manages_roles(
    client: httpx.AsyncClient, db: AsyncEngine, roled_org: RoledOrg, superuser: Account
) -> None:
    listed = await client.get(f"{roled_org.url}/roles", headers=superuser.headers)
    assert listed.status_code == 200, listed.text
    catalog = await client.get(f"{roled_org.url}/permissions", headers=superuser.headers)
    assert catalog.status_code == 200, catalog.text
    created = await create_role(
        client, roled_org, "destroyer", ["organization:delete"], by=superuser
    )
    assert created["permissions"] == ["organization:delete"]
    updated = await client.patch(
        f"{roled_org.url}/roles/destroyer",
        json={"permissions": BUILT_IN_PERMISSIONS},
        headers=superuser.headers,
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["permissions"] == BUILT_IN_PERMISSIONS
    deleted = await client.delete(f"{roled_org.url}/roles/destroyer", headers=superuser.headers)
    assert deleted.status_code == 204, deleted.text
    assert await role_rows(db, roled_org.id) == {}
